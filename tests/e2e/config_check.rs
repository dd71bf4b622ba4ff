//! `journeyd config check` on the shipped config and on every broken config
//! of the corpus.

use crate::support::{journeyd, repo, stderr, stdout};

#[test]
fn the_shipped_config_passes_config_check() {
    let output = journeyd()
        .args(["--config"])
        .arg(repo().join("config/journeyd.toml"))
        .args(["config", "check"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("7 stages"), "{}", stdout(&output));
}

/// Each case directory holds a journeyd.toml, the journey it names, and in
/// expected.txt the exact diagnostics; the binary must print those, exit 2,
/// and print nothing on stdout. Every mismatch is reported, not just the first.
#[test]
fn every_broken_config_in_the_corpus_is_refused_with_its_exact_diagnostics() {
    let corpus = repo().join("tests/config-corpus");
    let mut cases: Vec<_> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    let mut failures = Vec::new();
    let mut broken = 0;
    for case in &cases {
        let Ok(expected) = std::fs::read_to_string(case.join("expected.txt")) else {
            continue;
        };
        let output = journeyd()
            .current_dir(case)
            .args(["--config", "journeyd.toml", "config", "check"])
            .output()
            .unwrap();
        let name = case.file_name().unwrap().to_string_lossy();
        if expected.trim().is_empty() {
            if !output.status.success() {
                failures.push(format!(
                    "{name}: expected to pass, got:\n{}",
                    stderr(&output)
                ));
            }
            continue;
        }
        broken += 1;
        let problems = expected.lines().filter(|l| !l.starts_with("    |")).count();
        let want =
            format!("{expected}error: {problems} problem(s) in the config; nothing was done\n");
        if output.status.code() != Some(2) || stderr(&output) != want || !output.stdout.is_empty() {
            failures.push(format!(
                "{name}: exit {:?}\n--- expected stderr\n{want}--- got\n{}",
                output.status.code(),
                stderr(&output)
            ));
        }
    }
    assert!(
        broken >= 25,
        "the corpus holds only {broken} broken configs"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
