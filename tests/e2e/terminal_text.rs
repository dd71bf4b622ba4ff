//! CRM text reaches the admin's terminal escaped: a record name cannot
//! retitle, clear or recolour it. JSON keeps the text exact.

use crate::support::{Install, deal_line, owner_line, stderr, stdout};

/// A deal name that sets the terminal's title, clears the screen, rings
/// the bell and reverses the text after it.
const HOSTILE: &str = "Acme\u{1b}]0;pwned\u{7}\u{1b}[2J\r\u{9b}31m\u{202e}gnp.exe";

fn installed() -> Install {
    let install = Install::new();
    install.import_lines(
        "hostile.jsonl",
        &[
            owner_line("7\u{1b}[31m", "Eve\u{1b}[8m"),
            deal_line("1\u{1b}[1m", HOSTILE, None),
            deal_line("2", HOSTILE, Some("7\u{1b}[31m")),
        ],
    );
    install.run(&["audit"]);
    install
}

/// Whether `output` holds anything a terminal would act on other than line
/// breaks.
fn acts_on_a_terminal(output: &str) -> Option<char> {
    output.chars().find(|&c| {
        (c.is_control() && c != '\n')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    })
}

fn assert_escaped(install: &Install, args: &[&str]) -> String {
    let output = install.run(args);
    let all = stdout(&output) + &stderr(&output);
    assert_eq!(acts_on_a_terminal(&all), None, "{args:?}:\n{all:?}");
    all
}

#[test]
fn violations_list_and_show_escape_crm_text() {
    let install = installed();
    let list = assert_escaped(&install, &["violations", "list"]);
    assert!(list.contains("1\\x1b[1m"), "{list}");
    let ids: Vec<String> = install
        .json(&["violations", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].to_string())
        .collect();
    for id in &ids {
        let show = assert_escaped(&install, &["violations", "show", id]);
        assert!(
            show.contains("Acme\\x1b]0;pwned\\x07\\x1b[2J\\r\\x9b31m\\u{202e}gnp.exe"),
            "{show}"
        );
    }
}

#[test]
fn the_report_and_the_write_back_plan_escape_crm_text() {
    let install = installed();
    let report = assert_escaped(&install, &["report"]);
    // The owner by name, escaped as their id would be.
    assert!(report.contains("Eve\\x1b[8m"), "{report}");
    let plan = assert_escaped(&install, &["writeback", "--connector", "hubspot"]);
    assert!(plan.contains("Acme\\x1b]0;pwned"), "{plan}");
}

#[test]
fn json_output_keeps_crm_text_exact() {
    let install = installed();
    let list = install.json(&["violations", "list"]);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|v| v["record_name"] == HOSTILE),
        "{list:#}"
    );
}
