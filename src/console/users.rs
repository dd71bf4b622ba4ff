//! The console's own users (`auth = "users"`): a file of one
//! `NAME:ROLE:HASH` line per user, ROLE `admin` or `viewer` and HASH an
//! argon2id PHC string, written by `journeyd console user add` and read
//! when the console starts. The file holds no password; it is still kept
//! readable by its owner only.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Views and acts.
    Admin,
    /// Views only.
    Viewer,
}

impl Role {
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "admin" => Some(Role::Admin),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }
}

#[derive(Debug, Error)]
pub enum UsersError {
    #[error("cannot read the console's users file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the console's users file {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: not a `NAME:ROLE:HASH` line with ROLE `admin` or `viewer`", path.display())]
    Line { path: PathBuf, line: usize },
    #[error("a user name is 1 to 64 letters, digits, `.`, `_`, `-` or `@`; `{0}` is not")]
    Name(String),
    #[error("the password is empty")]
    EmptyPassword,
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// The users of a users file.
#[derive(Debug, Default)]
pub struct Users {
    by_name: BTreeMap<String, (Role, String)>,
}

impl Users {
    /// Reads the users file at `path`.
    pub fn load(path: &Path) -> Result<Users, UsersError> {
        let text = std::fs::read_to_string(path).map_err(|source| UsersError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut by_name = BTreeMap::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || UsersError::Line {
                path: path.to_owned(),
                line: index + 1,
            };
            let mut parts = line.splitn(3, ':');
            let (Some(name), Some(role), Some(hash)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(bad());
            };
            let role = Role::parse(role).ok_or_else(bad)?;
            PasswordHash::new(hash).map_err(|_| bad())?;
            by_name.insert(name.to_owned(), (role, hash.to_owned()));
        }
        Ok(Users { by_name })
    }

    /// The role of `name`, if `password` is theirs.
    pub fn check(&self, name: &str, password: &str) -> Option<Role> {
        let (role, hash) = self.by_name.get(name)?;
        let hash = PasswordHash::new(hash).ok()?;
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .ok()
            .map(|()| *role)
    }

    /// Adds `name` (or replaces their line) in the users file at `path`,
    /// which is made if missing, readable by its owner only.
    pub fn add(path: &Path, name: &str, role: Role, password: &str) -> Result<(), UsersError> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
        if !valid {
            return Err(UsersError::Name(name.to_owned()));
        }
        if password.is_empty() {
            return Err(UsersError::EmptyPassword);
        }
        let mut users = if path.exists() {
            Users::load(path)?
        } else {
            Users::default()
        };
        let mut random = [0; 16];
        getrandom::fill(&mut random).map_err(|error| UsersError::Hash(error.to_string()))?;
        let salt =
            SaltString::encode_b64(&random).map_err(|error| UsersError::Hash(error.to_string()))?;
        let hash = Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|error| UsersError::Hash(error.to_string()))?
            .to_string();
        users.by_name.insert(name.to_owned(), (role, hash));
        let mut text = String::from("# journeyd console users: NAME:ROLE:HASH (argon2id)\n");
        for (name, (role, hash)) in &users.by_name {
            text.push_str(&format!("{name}:{}:{hash}\n", role.as_str()));
        }
        write_private(path, &text).map_err(|source| UsersError::Write {
            path: path.to_owned(),
            source,
        })
    }
}

/// Writes `text` to `path` through a file beside it, owner-only, renamed
/// over it: a crash leaves the old file or the new, never half of one.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let beside = path.with_extension("new");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&beside)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&beside, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_added_is_known_by_their_password_and_role_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        Users::add(&path, "dana", Role::Admin, "correct horse").unwrap();
        Users::add(&path, "vic", Role::Viewer, "battery staple").unwrap();
        let users = Users::load(&path).unwrap();
        assert_eq!(users.check("dana", "correct horse"), Some(Role::Admin));
        assert_eq!(users.check("vic", "battery staple"), Some(Role::Viewer));
        assert_eq!(users.check("dana", "battery staple"), None);
        assert_eq!(users.check("eve", "correct horse"), None);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("dana:admin:$argon2id$") && !text.contains("correct horse"));
    }

    #[test]
    fn adding_a_user_again_replaces_their_password_and_role() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        Users::add(&path, "dana", Role::Admin, "old").unwrap();
        Users::add(&path, "dana", Role::Viewer, "new").unwrap();
        let users = Users::load(&path).unwrap();
        assert_eq!(users.check("dana", "old"), None);
        assert_eq!(users.check("dana", "new"), Some(Role::Viewer));
    }

    #[test]
    fn a_bad_line_is_named_and_a_bad_name_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        std::fs::write(&path, "# users\ndana:boss:$argon2id$x\n").unwrap();
        let error = Users::load(&path).unwrap_err().to_string();
        assert!(
            error.ends_with("users:2: not a `NAME:ROLE:HASH` line with ROLE `admin` or `viewer`"),
            "{error}"
        );
        assert!(matches!(
            Users::add(&path, "a:b", Role::Admin, "x"),
            Err(UsersError::Name(_))
        ));
    }
}
