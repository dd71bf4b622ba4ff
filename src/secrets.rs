//! Credentials, read once at startup and held as [`SecretString`]s: from an
//! environment variable, or from a systemd credential in
//! `$CREDENTIALS_DIRECTORY`. And the one secret journeyd writes: an OAuth
//! refresh token the CRM rotated, saved in the state directory.
//!
//! Errors name the connector and the variable or credential, never a value.
//! A secret file that its owner's group or other users may open is refused
//! before it is read: whoever could read it has the secret already, and the
//! admin should hear so at startup rather than never.
//! Nothing here touches the SQLite store: a secret never goes there.

use crate::config::SecretRef;
use crate::telemetry::ErrorChain;
use journeyd_connector::ConnectorName;
use journeyd_connector::http::{TokenStore, TokenStoreError};
use secrecy::{ExposeSecret, SecretString};
use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The systemd variable naming the directory of `LoadCredential=` files.
pub const CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

/// The subdirectory of the state directory holding rotated refresh tokens.
const TOKEN_DIR: &str = "credentials";

#[derive(Debug, Error)]
pub enum SecretError {
    #[error("connector {connector}: environment variable {name} is not set")]
    EnvMissing {
        connector: ConnectorName,
        name: String,
    },
    #[error("connector {connector}: environment variable {name} is not valid UTF-8")]
    EnvNotUnicode {
        connector: ConnectorName,
        name: String,
    },
    #[error(
        "connector {connector}: credential {name} needs $CREDENTIALS_DIRECTORY, which is not set (is `LoadCredential={name}:...` in the service unit?)"
    )]
    NoCredentialsDirectory {
        connector: ConnectorName,
        name: String,
    },
    #[error("connector {connector}: cannot read credential {name} from {}", dir.display())]
    Credential {
        connector: ConnectorName,
        name: String,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "connector {connector}: credential file {} is {} by group or others (mode {mode:04o}); make it 0600 or 0400, or load it with LoadCredential=",
        path.display(),
        access(*mode)
    )]
    CredentialOpenToOthers {
        connector: ConnectorName,
        path: PathBuf,
        mode: u32,
    },
    #[error("connector {connector}: {what} {name} is empty")]
    Empty {
        connector: ConnectorName,
        what: &'static str,
        name: String,
    },
    #[error("connector {connector} has no `{key}` in the config, and needs one to reach its CRM")]
    NotConfigured {
        connector: ConnectorName,
        key: &'static str,
    },
    #[error("connector {connector}: cannot read the saved refresh token {}", path.display())]
    SavedToken {
        connector: ConnectorName,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "connector {connector}: the saved refresh token {} is {} by group or others (mode {mode:04o}); make it 0600 (journeyd writes it so)",
        path.display(),
        access(*mode)
    )]
    SavedTokenOpenToOthers {
        connector: ConnectorName,
        path: PathBuf,
        mode: u32,
    },
}

/// How `mode`'s group and other bits open a file up, for an error message:
/// reading matters most, so it is named first.
fn access(mode: u32) -> &'static str {
    if mode & 0o044 != 0 {
        "readable"
    } else if mode & 0o022 != 0 {
        "writable"
    } else {
        "executable"
    }
}

/// Looks up an environment variable.
type EnvLookup = std::sync::Arc<dyn Fn(&str) -> Option<OsString> + Send + Sync>;

/// Reads secrets from the process's environment and credentials directory
/// (or, in tests, from given ones).
#[derive(Clone)]
pub struct SecretResolver {
    env: EnvLookup,
    credentials_dir: Option<PathBuf>,
}

impl SecretResolver {
    /// The process's environment, and `$CREDENTIALS_DIRECTORY` if set.
    pub fn from_process() -> Self {
        SecretResolver {
            env: std::sync::Arc::new(|name| std::env::var_os(name)),
            credentials_dir: std::env::var_os(CREDENTIALS_DIRECTORY).map(PathBuf::from),
        }
    }

    /// Variables from `env`, credentials from `credentials_dir`.
    pub fn new(
        env: impl Fn(&str) -> Option<OsString> + Send + Sync + 'static,
        credentials_dir: Option<PathBuf>,
    ) -> Self {
        SecretResolver {
            env: std::sync::Arc::new(env),
            credentials_dir,
        }
    }

    /// The secret `source` names, for `connector`.
    pub fn resolve(
        &self,
        connector: &ConnectorName,
        source: &SecretRef,
    ) -> Result<SecretString, SecretError> {
        let (what, name, value) = match source {
            SecretRef::Env(name) => {
                let value = (self.env)(name).ok_or_else(|| SecretError::EnvMissing {
                    connector: connector.clone(),
                    name: name.clone(),
                })?;
                let value = value
                    .into_string()
                    .map_err(|_| SecretError::EnvNotUnicode {
                        connector: connector.clone(),
                        name: name.clone(),
                    })?;
                ("environment variable", name, value)
            }
            SecretRef::Credential(name) => {
                let dir = self.credentials_dir.as_ref().ok_or_else(|| {
                    SecretError::NoCredentialsDirectory {
                        connector: connector.clone(),
                        name: name.clone(),
                    }
                })?;
                let path = dir.join(name);
                let unreadable = |source: std::io::Error| SecretError::Credential {
                    connector: connector.clone(),
                    name: name.clone(),
                    dir: dir.clone(),
                    source,
                };
                let mut file = File::open(&path).map_err(unreadable)?;
                if let Some(mode) = open_to_others(&file).map_err(unreadable)? {
                    return Err(SecretError::CredentialOpenToOthers {
                        connector: connector.clone(),
                        path,
                        mode,
                    });
                }
                let mut value = String::new();
                file.read_to_string(&mut value).map_err(unreadable)?;
                // `echo token > file` leaves a newline no CRM expects.
                if value.ends_with('\n') {
                    value.pop();
                    if value.ends_with('\r') {
                        value.pop();
                    }
                }
                ("credential", name, value)
            }
        };
        if value.is_empty() {
            return Err(SecretError::Empty {
                connector: connector.clone(),
                what,
                name: name.clone(),
            });
        }
        Ok(SecretString::from(value))
    }

    /// `source` resolved, or an error naming the missing config `key`.
    pub fn require(
        &self,
        connector: &ConnectorName,
        key: &'static str,
        source: Option<&SecretRef>,
    ) -> Result<SecretString, SecretError> {
        match source {
            Some(source) => self.resolve(connector, source),
            None => Err(SecretError::NotConfigured {
                connector: connector.clone(),
                key,
            }),
        }
    }
}

/// Rotated OAuth refresh tokens, one file per connector in
/// `<state dir>/credentials/<connector>.refresh-token`, readable by the
/// daemon's user only.
///
/// A saved token takes precedence over the configured one at startup: an
/// OAuth server that rotates refresh tokens may revoke the old one as soon
/// as it hands out the new one, and the configured source (an environment
/// variable, a systemd credential) is read-only to the daemon. So once a
/// rotation has happened, the saved file holds the only token known to
/// work. An admin who issues a new token deletes the file.
#[derive(Debug, Clone)]
pub struct RefreshTokenFile {
    dir: PathBuf,
}

impl RefreshTokenFile {
    /// Tokens kept beside the state file `state_path`.
    pub fn beside(state_path: &Path) -> Self {
        let state_dir = state_path.parent().unwrap_or(Path::new(""));
        RefreshTokenFile {
            dir: state_dir.join(TOKEN_DIR),
        }
    }

    pub fn path(&self, connector: &ConnectorName) -> PathBuf {
        self.dir.join(format!("{connector}.refresh-token"))
    }

    /// The saved token of `connector`, if a rotation saved one.
    pub fn load(&self, connector: &ConnectorName) -> Result<Option<SecretString>, SecretError> {
        let path = self.path(connector);
        let unreadable = |source: std::io::Error| SecretError::SavedToken {
            connector: connector.clone(),
            path: path.clone(),
            source,
        };
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(unreadable(source)),
        };
        if let Some(mode) = open_to_others(&file).map_err(unreadable)? {
            return Err(SecretError::SavedTokenOpenToOthers {
                connector: connector.clone(),
                path,
                mode,
            });
        }
        let mut token = String::new();
        file.read_to_string(&mut token).map_err(unreadable)?;
        if token.is_empty() {
            return Ok(None);
        }
        Ok(Some(SecretString::from(token)))
    }

    /// The refresh token to start with: the saved one, else the configured one.
    pub fn current(
        &self,
        connector: &ConnectorName,
        configured: SecretString,
    ) -> Result<SecretString, SecretError> {
        Ok(self.load(connector)?.unwrap_or(configured))
    }

    /// Writes the token so that a crash leaves either the old file or the new
    /// one, never a torn one: a temporary file (mode 0600) written and synced,
    /// renamed over the old, then the directory synced so the rename lasts.
    fn save(&self, connector: &ConnectorName, token: &SecretString) -> std::io::Result<()> {
        create_private_dir(&self.dir)?;
        let path = self.path(connector);
        let tmp = self.dir.join(format!(".{connector}.refresh-token.tmp"));
        // A crash may have left one behind; its content is stale.
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        let mut file = private_file(&tmp)?;
        file.write_all(token.expose_secret().as_bytes())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, &path)?;
        sync_dir(&self.dir)
    }
}

impl TokenStore for RefreshTokenFile {
    fn save_refresh_token(
        &self,
        connector: &ConnectorName,
        token: &SecretString,
    ) -> Result<(), TokenStoreError> {
        self.save(connector, token).map_err(|error| {
            tracing::error!(connector = %connector, error = %ErrorChain(&error), "could not save a rotated refresh token");
            TokenStoreError {
                connector: connector.clone(),
                reason: format!("{}: {error}", self.path(connector).display()),
            }
        })
    }
}

/// The permission bits of the open `file` (`0o644`, ...) when any of them
/// lets its group or other users in. Asked of the open file, not its path,
/// so the file checked is the file read.
#[cfg(unix)]
fn open_to_others(file: &File) -> std::io::Result<Option<u32>> {
    use std::os::unix::fs::PermissionsExt;
    let mode = file.metadata()?.permissions().mode() & 0o7777;
    Ok((mode & 0o077 != 0).then_some(mode))
}

/// Other systems have no such bits to check.
#[cfg(not(unix))]
fn open_to_others(_file: &File) -> std::io::Result<Option<u32>> {
    Ok(None)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn hubspot() -> ConnectorName {
        ConnectorName::new("hubspot")
    }

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> + Send + Sync + 'static {
        let vars: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
            .collect();
        move |name| vars.get(name).cloned()
    }

    #[test]
    fn an_environment_variable_is_read_as_it_is() {
        let resolver = SecretResolver::new(env(&[("HS_TOKEN", "pat-na1-abc\n")]), None);
        let secret = resolver
            .resolve(&hubspot(), &SecretRef::Env("HS_TOKEN".into()))
            .unwrap();
        assert_eq!(secret.expose_secret(), "pat-na1-abc\n");
    }

    /// Writes a secret file as `LoadCredential=` leaves one: owner-only.
    fn write_private(path: &Path, content: &str) {
        std::fs::write(path, content).unwrap();
        set_mode(path, 0o600);
    }

    fn set_mode(path: &Path, mode: u32) {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        #[cfg(not(unix))]
        let _ = (path, mode);
    }

    #[test]
    fn a_credential_file_is_read_with_one_trailing_newline_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        write_private(&dir.path().join("hubspot-token"), "pat-na1-abc\n\n");
        write_private(&dir.path().join("crlf"), "s3cret\r\n");
        let resolver = SecretResolver::new(env(&[]), Some(dir.path().to_owned()));
        let secret = resolver
            .resolve(&hubspot(), &SecretRef::Credential("hubspot-token".into()))
            .unwrap();
        assert_eq!(secret.expose_secret(), "pat-na1-abc\n");
        let secret = resolver
            .resolve(&hubspot(), &SecretRef::Credential("crlf".into()))
            .unwrap();
        assert_eq!(secret.expose_secret(), "s3cret");
    }

    #[cfg(unix)]
    #[test]
    fn an_owner_only_credential_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        for (name, mode) in [("rw", 0o600), ("r", 0o400)] {
            write_private(&dir.path().join(name), "pat-na1-abc");
            set_mode(&dir.path().join(name), mode);
            let resolver = SecretResolver::new(env(&[]), Some(dir.path().to_owned()));
            let secret = resolver
                .resolve(&hubspot(), &SecretRef::Credential(name.into()))
                .unwrap();
            assert_eq!(secret.expose_secret(), "pat-na1-abc", "mode {mode:o}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_credential_file_readable_by_group_or_others_is_refused_naming_file_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hubspot-token");
        let resolver = SecretResolver::new(env(&[]), Some(dir.path().to_owned()));
        for (mode, shown) in [(0o640, "0640"), (0o604, "0604"), (0o644, "0644")] {
            write_private(&path, "hunter2");
            set_mode(&path, mode);
            let error = resolver
                .resolve(&hubspot(), &SecretRef::Credential("hubspot-token".into()))
                .unwrap_err();
            assert_eq!(
                error.to_string(),
                format!(
                    "connector hubspot: credential file {} is readable by group or others (mode {shown}); make it 0600 or 0400, or load it with LoadCredential=",
                    path.display()
                )
            );
            assert!(!format!("{error:?}").contains("hunter2"));
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_credential_file_only_writable_by_the_group_is_refused_as_writable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hubspot-token");
        write_private(&path, "hunter2");
        set_mode(&path, 0o620);
        let resolver = SecretResolver::new(env(&[]), Some(dir.path().to_owned()));
        let error = resolver
            .resolve(&hubspot(), &SecretRef::Credential("hubspot-token".into()))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("is writable by group or others (mode 0620)"),
            "{error}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_saved_refresh_token_readable_by_others_is_refused_naming_file_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = RefreshTokenFile::beside(&dir.path().join("journeyd.sqlite"));
        tokens
            .save_refresh_token(&hubspot(), &SecretString::from("rt-secret"))
            .unwrap();
        let path = tokens.path(&hubspot());
        set_mode(&path, 0o604);
        let error = tokens
            .current(&hubspot(), SecretString::from("rt-configured"))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "connector hubspot: the saved refresh token {} is readable by group or others (mode 0604); make it 0600 (journeyd writes it so)",
                path.display()
            )
        );
        assert!(!format!("{error:?}").contains("rt-secret"));
        set_mode(&path, 0o600);
        let token = tokens.load(&hubspot()).unwrap().unwrap();
        assert_eq!(token.expose_secret(), "rt-secret");
    }

    #[test]
    fn a_missing_variable_is_named_with_its_connector_and_no_value() {
        let resolver = SecretResolver::new(env(&[("OTHER", "hunter2")]), None);
        let error = resolver
            .resolve(&hubspot(), &SecretRef::Env("HS_TOKEN".into()))
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "connector hubspot: environment variable HS_TOKEN is not set"
        );
    }

    #[test]
    fn a_missing_credential_names_the_credential_and_never_its_content() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("present"), "hunter2").unwrap();
        let resolver = SecretResolver::new(env(&[]), Some(dir.path().to_owned()));
        let error = resolver
            .resolve(&hubspot(), &SecretRef::Credential("absent".into()))
            .unwrap_err();
        let text = error.to_string();
        assert!(text.starts_with("connector hubspot: cannot read credential absent from "));
        assert!(!format!("{error:?}").contains("hunter2"));

        let no_dir = SecretResolver::new(env(&[]), None);
        let text = no_dir
            .resolve(&hubspot(), &SecretRef::Credential("present".into()))
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("credential present needs $CREDENTIALS_DIRECTORY"),
            "{text}"
        );
    }

    #[test]
    fn an_empty_secret_is_refused_by_name() {
        let resolver = SecretResolver::new(env(&[("HS_TOKEN", "")]), None);
        let error = resolver
            .resolve(&hubspot(), &SecretRef::Env("HS_TOKEN".into()))
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "connector hubspot: environment variable HS_TOKEN is empty"
        );
    }

    #[test]
    fn a_secret_the_config_does_not_name_is_reported_by_key() {
        let resolver = SecretResolver::new(env(&[]), None);
        let error = resolver
            .require(&hubspot(), "secret", None)
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "connector hubspot has no `secret` in the config, and needs one to reach its CRM"
        );
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let resolver = SecretResolver::new(env(&[("HS_TOKEN", "hunter2")]), None);
        let secret = resolver
            .resolve(&hubspot(), &SecretRef::Env("HS_TOKEN".into()))
            .unwrap();
        assert!(!format!("{secret:?}").contains("hunter2"));
    }

    #[test]
    fn a_saved_refresh_token_replaces_the_file_atomically_and_is_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = RefreshTokenFile::beside(&dir.path().join("journeyd.sqlite"));
        tokens
            .save_refresh_token(&hubspot(), &SecretString::from("rt-1"))
            .unwrap();
        tokens
            .save_refresh_token(&hubspot(), &SecretString::from("rt-2"))
            .unwrap();
        let path = dir.path().join("credentials/hubspot.refresh-token");
        assert_eq!(tokens.path(&hubspot()), path);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "rt-2");
        let names: Vec<String> = std::fs::read_dir(dir.path().join("credentials"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["hubspot.refresh-token"],
            "no temporary file is left"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(&dir.path().join("credentials")), 0o700);
        }
    }

    #[test]
    fn a_stale_temporary_file_from_a_crash_does_not_block_saving() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = RefreshTokenFile::beside(&dir.path().join("journeyd.sqlite"));
        std::fs::create_dir_all(dir.path().join("credentials")).unwrap();
        std::fs::write(
            dir.path().join("credentials/.hubspot.refresh-token.tmp"),
            "torn",
        )
        .unwrap();
        tokens
            .save_refresh_token(&hubspot(), &SecretString::from("rt-3"))
            .unwrap();
        assert_eq!(
            tokens.load(&hubspot()).unwrap().unwrap().expose_secret(),
            "rt-3"
        );
    }

    #[test]
    fn a_saved_rotated_token_takes_precedence_over_the_configured_one() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = RefreshTokenFile::beside(&dir.path().join("journeyd.sqlite"));
        let configured = || SecretString::from("rt-configured");
        let first = tokens.current(&hubspot(), configured()).unwrap();
        assert_eq!(first.expose_secret(), "rt-configured");
        tokens
            .save_refresh_token(&hubspot(), &SecretString::from("rt-rotated"))
            .unwrap();
        let next = tokens.current(&hubspot(), configured()).unwrap();
        assert_eq!(next.expose_secret(), "rt-rotated");
        let other = tokens
            .current(&ConnectorName::new("eu"), configured())
            .unwrap();
        assert_eq!(other.expose_secret(), "rt-configured");
    }
}
