//! Configuration: the daemon config (`journeyd.toml`) and the journey it
//! names (`journey.toml`), parsed, then validated once into typed values.
//!
//! - [`model`]: the typed [`Config`] the rest of the daemon uses;
//! - `raw`: the files as written (serde structs that never leave here);
//! - `document`: TOML text -> raw structs, reporting every unknown key and
//!   wrong type rather than the first;
//! - `validate`: raw -> [`Config`], every problem at once, no IO;
//! - `diagnostic`: [`ConfigErrors`], each problem with file:line:col and the
//!   offending line (secret values masked).
//!
//! [`load`] reads the two files and nothing else: no network, no secrets
//! (a connector's config only names where its secret is).

mod diagnostic;
mod document;
pub mod model;
mod raw;
mod validate;

#[cfg(test)]
mod tests;

pub use diagnostic::{ConfigErrors, Diagnostic};
pub use model::*;

use diagnostic::{FileId, Sink, SourceFile};
use raw::{RawDaemon, RawJourney};
use std::path::Path;
use validate::Input;

/// Loads the daemon config at `path` and the journey it names, and
/// validates both; on failure, every problem found in either file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let mut sink = Sink::default();
    let daemon_file = match read(FileId::Daemon, path) {
        Ok(file) => file,
        Err(error) => {
            sink.error(
                FileId::Daemon,
                0,
                format!("cannot read the config file: {error}"),
            );
            let empty = SourceFile {
                id: FileId::Daemon,
                path: path.to_owned(),
                text: String::new(),
            };
            return Err(ConfigErrors {
                diagnostics: sink.finish(&[&empty]),
            });
        }
    };
    let daemon = document::parse::<RawDaemon>(&daemon_file, &mut sink);
    let journey_ref = match &daemon {
        Some(parsed) => parsed.raw.journey.clone(),
        None => document::recover_top_level_string(&daemon_file.text, "journey"),
    };
    let journey_file = journey_ref.and_then(|reference| {
        let journey_path = validate::resolve(path, reference.get_ref());
        match read(FileId::Journey, &journey_path) {
            Ok(file) => Some(file),
            Err(error) => {
                sink.error(
                    FileId::Daemon,
                    reference.span().start,
                    format!(
                        "cannot read the journey file `{}`: {error}",
                        journey_path.display()
                    ),
                );
                None
            }
        }
    });
    let journey = journey_file.as_ref().and_then(|file| {
        document::parse::<RawJourney>(file, &mut sink).map(|parsed| (file, parsed))
    });

    let config = validate::config(
        path,
        daemon.as_ref().map(|parsed| Input {
            parsed,
            file: &daemon_file,
        }),
        journey
            .as_ref()
            .map(|(file, parsed)| Input { parsed, file }),
        &mut sink,
    );
    let clean = sink.is_empty();
    let mut files = vec![&daemon_file];
    files.extend(journey_file.as_ref());
    match config {
        Some(config) if clean => Ok(config),
        _ => Err(ConfigErrors {
            diagnostics: sink.finish(&files),
        }),
    }
}

/// The io error's own text, lowercased, without the `(os error N)` noise
/// admins cannot act on.
fn read(id: FileId, path: &Path) -> Result<SourceFile, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(SourceFile {
            id,
            path: path.to_owned(),
            text,
        }),
        Err(error) => {
            let message = error.to_string();
            let message = message.split(" (os error").next().unwrap_or(&message);
            Err(diagnostic::lowercase_first(message))
        }
    }
}
