//! Config loading as admins see it.
//!
//! Most behaviour is specified by the corpus in `tests/config-corpus/`: each
//! case is a directory with a `journeyd.toml`, a `journey.toml` and the exact
//! report expected from loading them (`expected.txt`, paths relative to the
//! case; empty when the config is valid). `UPDATE_EXPECT=1` rewrites the
//! expectations from what the code says now, for review in the diff.

use super::*;
use std::path::{Path, PathBuf};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config-corpus")
}

/// The report for a case, with the case directory taken out of its paths.
fn render(case: &Path) -> String {
    match load(&case.join("journeyd.toml")) {
        Ok(_) => String::new(),
        Err(errors) => {
            let prefix = format!("{}/", case.display());
            errors.to_string().replace(&prefix, "")
        }
    }
}

#[test]
fn every_corpus_case_reports_exactly_its_expected_problems() {
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("the corpus directory is readable")
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 28, "the corpus has {} cases", cases.len());

    let mut failures = Vec::new();
    for case in &cases {
        let actual = render(case);
        let expected_path = case.join("expected.txt");
        if update {
            std::fs::write(&expected_path, &actual).expect("expected.txt is writable");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if actual != expected {
            failures.push(format!(
                "--- {}\n--- expected:\n{expected}--- actual:\n{actual}",
                case.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ (UPDATE_EXPECT=1 rewrites them):\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn a_literal_secret_never_appears_in_the_report() {
    let case = corpus_dir().join("27-literal-secret");
    let report = render(&case);
    let config = std::fs::read_to_string(case.join("journeyd.toml")).unwrap_or_default();
    assert!(
        report.contains("secrets are never written in the config file"),
        "{report}"
    );
    for secret in [
        "pat-na1-5f1e0c1b-d2a1-4c6e-9b1f-1a2b3c4d5e6f",
        "s3cr3t-Pa55word",
        "hunter2",
    ] {
        assert!(config.contains(secret), "the case still holds `{secret}`");
        assert!(
            !report.contains(secret),
            "`{secret}` leaked into:\n{report}"
        );
    }
}

#[test]
fn the_shipped_config_loads_without_problems() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/journeyd.toml");
    let config = match load(&path) {
        Ok(config) => config,
        Err(errors) => panic!("the shipped config has problems:\n{errors}"),
    };
    let stages: Vec<&str> = config
        .journey
        .stages
        .iter()
        .map(|s| s.id.as_str())
        .collect();
    assert_eq!(
        stages,
        [
            "awareness",
            "consideration",
            "decision",
            "onboarding",
            "adoption",
            "renewal",
            "expansion"
        ]
    );
    let systems: Vec<&str> = config
        .connectors
        .iter()
        .map(|c| c.system.as_str())
        .collect();
    assert_eq!(systems, ["dynamics", "hubspot", "salesforce"]);
    for stage in &config.journey.stages {
        assert!(
            (3..=5).contains(&stage.exit_criteria.len()),
            "stage `{}` has {} criteria",
            stage.id,
            stage.exit_criteria.len()
        );
    }
}
