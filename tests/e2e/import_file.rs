//! `journeyd import` takes every good line of a file and names each bad one.

use crate::support::{Install, deal_line, owner_line, stderr, stdout};

fn count(install: &Install, table: &str) -> i64 {
    let db = rusqlite::Connection::open(install.path("state.sqlite")).unwrap();
    db.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

fn write(install: &Install, name: &str, bytes: &[u8]) -> String {
    let path = install.path(name);
    std::fs::write(&path, bytes).unwrap();
    path.display().to_string()
}

#[test]
fn bad_lines_are_skipped_and_named_every_good_line_and_owner_is_stored_and_the_exit_is_1() {
    let install = Install::new();
    let mut file = b"\xef\xbb\xbf".to_vec();
    let mut line = |text: &[u8]| {
        file.extend_from_slice(text);
        file.push(b'\n');
    };
    line(owner_line("101", "Mara Quinn").as_bytes()); // 1, after a BOM
    line(deal_line("1", "Acme", Some("101")).as_bytes()); // 2
    line(b"{\"type\":\"record\",\"name\":\"caf\xe9\"}"); // 3: Latin-1, not UTF-8
    line(deal_line("2", &"x".repeat(2 << 20), None).as_bytes()); // 4: 2 MiB
    line(deal_line("3", &"n".repeat(200 << 10), None).as_bytes()); // 5: a 200 KiB name
    line(b"{not json"); // 6
    line(deal_line("4", "Globex", None).as_bytes()); // 7
    line(owner_line("102", "Sam Ortiz").as_bytes()); // 8, after the bad lines
    let path = write(&install, "mixed.jsonl", &file);

    let output = install.run_expecting(1, &["import", &path, "--connector", "hubspot"]);

    let err = stderr(&output);
    for expected in [
        format!("{path}:3: skipped: the line is not UTF-8 (invalid byte at column 29)"),
        format!("{path}:4: skipped: the line is "),
        format!("{path}:5: skipped: field `name` is 204800 bytes, over the cap of 131072"),
        format!("{path}:6: skipped: key must be a string"),
    ] {
        assert!(err.contains(&expected), "{expected}\n{err}");
    }
    assert!(
        !err.contains(":1: skipped") && !err.contains(":2: skipped"),
        "{err}"
    );
    assert!(
        stdout(&output)
            .contains("2 records (2 new, 0 updated, 0 unchanged), 2 owners; 4 line(s) skipped"),
        "{}",
        stdout(&output)
    );
    assert_eq!(count(&install, "records"), 2);
    assert_eq!(count(&install, "owners"), 2);
}

#[test]
fn a_file_whose_lines_are_all_good_imports_with_exit_0() {
    let install = Install::new();
    let output = install.import_lines(
        "good.jsonl",
        &[
            owner_line("101", "Mara Quinn"),
            deal_line("1", "Acme", Some("101")),
        ],
    );
    assert!(
        stdout(&output).contains("0 line(s) skipped"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn a_connector_of_another_system_than_the_files_is_refused_before_anything_is_stored() {
    let install = Install::new();
    let path = write(
        &install,
        "hubspot.jsonl",
        format!(
            "{}\n{}\n",
            owner_line("101", "Mara Quinn"),
            deal_line("1", "Acme", None)
        )
        .as_bytes(),
    );
    let output = install.run_expecting(2, &["import", &path, "--connector", "salesforce"]);
    let err = stderr(&output);
    assert!(
        err.contains("connector `salesforce` is a salesforce connector, but the file holds hubspot records (line 2): name a hubspot connector (hubspot)"),
        "{err}"
    );
    assert_eq!(count(&install, "records"), 0);
    assert_eq!(count(&install, "owners"), 0);
}

#[test]
fn an_unknown_connector_is_refused_naming_the_configured_ones() {
    let install = Install::new();
    let path = write(
        &install,
        "deals.jsonl",
        deal_line("1", "Acme", None).as_bytes(),
    );
    let output = install.run_expecting(2, &["import", &path, "--connector", "hubspot-eu"]);
    assert!(
        stderr(&output).contains(
            "no connector `hubspot-eu` is configured (the connectors are dynamics, hubspot, salesforce)"
        ),
        "{}",
        stderr(&output)
    );
    assert!(!install.path("state.sqlite").exists());
}

#[test]
fn without_connector_a_file_goes_to_the_only_connector_of_its_system() {
    let install = Install::new();
    let path = write(
        &install,
        "deals.jsonl",
        deal_line("1", "Acme", None).as_bytes(),
    );
    let output = install.run(&["import", &path]);
    assert!(
        stdout(&output).contains("imported into hubspot: 1 records"),
        "{}",
        stdout(&output)
    );
}
