//! `journeyd demo`, the README's first command, on a machine with nothing
//! but the binary: no account, no network, no config. All three emulated
//! CRMs, a Dynamics 365 environment, a HubSpot portal and a Salesforce org,
//! are synced, audited and (with `--apply`) written to.

use crate::support::{journeyd, stderr, stdout};
use journeyd_salesforce_emulator::TEST_JWT_PRIVATE_KEY_PEM;
use serde_json::Value;
use std::path::PathBuf;

const CONNECTORS: [&str; 3] = ["dynamics", "hubspot", "salesforce"];

/// The number after `prefix` on the line starting with it.
fn count_after(out: &str, prefix: &str) -> u64 {
    out.lines()
        .find_map(|line| line.strip_prefix(prefix))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count after {prefix:?}:\n{out}"))
}

/// The lines after the line starting with `start`: from the first that is
/// not blank up to the next blank one.
fn section<'o>(out: &'o str, start: &str) -> Vec<&'o str> {
    out.lines()
        .skip_while(|line| !line.starts_with(start))
        .skip(1)
        .skip_while(|line| line.trim().is_empty())
        .take_while(|line| !line.trim().is_empty())
        .collect()
}

#[test]
fn the_demo_syncs_every_emulated_crm_audits_them_and_with_apply_writes_tasks_into_each() {
    let output = journeyd()
        .args(["demo", "--apply"])
        .output()
        .expect("journeyd runs");
    let (out, err) = (stdout(&output), stderr(&output));
    assert!(output.status.success(), "{out}\n{err}");
    for line in [
        "Dynamics:   an emulated environment serves 1001 opportunities",
        "HubSpot:    an emulated portal serves 2000 deals",
        "Salesforce: an emulated org serves 1001 opportunities",
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(line) && l.contains(" at http://127.0.0.1:")),
            "no line {line:?} naming a loopback address:\n{out}"
        );
    }
    for step in [
        "== sync every CRM",
        "== audit every record",
        "== the violations log",
        "== stage KPIs",
        "== write-back",
    ] {
        assert!(out.contains(step), "the demo skipped {step:?}:\n{out}");
    }
    let synced = section(&out, "== sync every CRM");
    for connector in CONNECTORS {
        assert!(
            synced.iter().any(|row| {
                let cells: Vec<&str> = row.split_whitespace().collect();
                cells.starts_with(&[connector, "ok"]) && cells[3].parse::<u32>().unwrap() > 1_000
            }),
            "{connector} was not synced in full:\n{out}"
        );
    }
    for connector in CONNECTORS {
        let open = count_after(&out, &format!("{connector}: "));
        assert!(open > 100, "{connector}: {open} open violations");
        let rows = section(&out, &format!("{connector}: {open} open violation(s)"));
        // The table's header, then ten of that connector's records, each
        // with its violations.
        assert!(rows.len() >= 11, "{rows:#?}");
        let records: std::collections::BTreeSet<&str> = rows[1..]
            .iter()
            .filter_map(|row| row.split(&format!(" {connector} ")).nth(1))
            .filter_map(|rest| rest.split_whitespace().nth(1))
            .collect();
        assert_eq!(records.len(), 10, "{rows:#?}");
        assert!(
            rows[1..]
                .iter()
                .all(|row| row.contains(&format!(" {connector} "))),
            "{rows:#?}"
        );
    }
    for (connector, crm) in [
        ("dynamics", "Dynamics environment"),
        ("hubspot", "HubSpot portal"),
        ("salesforce", "Salesforce org"),
    ] {
        let applied = section(&out, &format!("{connector}: write-back run "))
            .iter()
            .find_map(|line| line.split_once(" sent, "))
            .map(|(sent, rest)| {
                let applied: u64 = rest.split_whitespace().next().unwrap().parse().unwrap();
                assert_eq!(sent.parse::<u64>().unwrap(), applied, "{rest}");
                applied
            })
            .unwrap_or_else(|| panic!("no {connector} write-back counts:\n{out}"));
        let created = count_after(&out, &format!("== tasks now in the {crm}: "));
        assert_eq!(
            created, applied,
            "the {crm} holds as many journeyd tasks as {connector} applied"
        );
        assert!(created > 100, "{created} tasks created in the {crm}");
        let tally = out
            .lines()
            .find(|line| line.starts_with(&format!("== tasks now in the {crm}: ")))
            .expect("the tally line");
        assert!(
            tally.ends_with(&format!(
                "{created} created by journeyd, on {created} records, with {created} different subjects, 0 without an owner"
            )),
            "one open task per record, no two alike, none unassigned: {tally}"
        );
    }
}

#[test]
fn the_demo_in_json_prints_one_document_per_step_covering_every_connector_and_writes_no_key() {
    let output = journeyd()
        .args(["--json", "demo", "--keep"])
        .output()
        .expect("journeyd runs");
    let (out, err) = (stdout(&output), stderr(&output));
    let kept = err
        .lines()
        .find_map(|line| line.strip_prefix("demo files kept in "))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("the kept directory is not named:\n{err}"));
    let files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&kept)
        .expect("the kept directory")
        .map(|entry| {
            let path = entry.expect("a directory entry").path();
            let bytes = std::fs::read(&path).unwrap_or_default();
            (path, bytes)
        })
        .collect();
    let with_contacts = |connector: &str| -> (i64, i64) {
        let state = files
            .iter()
            .find(|(path, _)| path.extension().is_some_and(|e| e == "sqlite"))
            .map(|(path, _)| path.clone())
            .expect("the kept state file");
        let db = rusqlite::Connection::open(state).expect("the state file opens");
        db.query_row(
            "SELECT count(*), count(*) FILTER (
                 WHERE json_array_length(snapshot, '$.associations.contacts') > 0)
             FROM records WHERE connector = ?1 AND object = 'deal'",
            [connector],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("the records are readable")
    };
    let (deals, linked) = with_contacts("salesforce");
    std::fs::remove_dir_all(&kept).expect("the kept directory is removed");
    assert!(output.status.success(), "{out}\n{err}");
    assert!(
        linked * 2 > deals,
        "{linked} of {deals} Salesforce deals have contacts (from OpportunityContactRoles)"
    );

    let key_line = TEST_JWT_PRIVATE_KEY_PEM.lines().nth(1).expect("a key line");
    for (path, bytes) in &files {
        let text = String::from_utf8_lossy(bytes);
        assert!(
            !text.contains(key_line) && !text.contains("PRIVATE KEY-----"),
            "{} holds the private key",
            path.display()
        );
    }

    let documents: Vec<Value> = serde_json::Deserializer::from_str(&out)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("the output is not a sequence of JSON documents ({e}):\n{out}"));
    let [synced, audit, violations, report, writeback] = &documents[..] else {
        panic!("{} documents, not one per step:\n{out}", documents.len());
    };
    let connectors = |rows: &Value, key: &str| -> Vec<String> {
        let mut names: Vec<String> = rows
            .as_array()
            .expect("a list")
            .iter()
            .map(|row| row[key].as_str().expect("a connector").to_owned())
            .collect();
        names.dedup();
        names
    };
    assert_eq!(connectors(&synced["synced"], "connector"), CONNECTORS);
    assert!(
        synced["synced"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["status"] == "ok")
    );
    assert!(audit["summary"]["violations"].as_u64().unwrap() > 300);
    assert_eq!(connectors(violations, "connector"), CONNECTORS);
    assert_eq!(violations.as_array().unwrap().len(), 30, "ten of each");
    assert!(report["stages"].is_array());
    assert_eq!(connectors(writeback, "connector"), CONNECTORS);
    for plan in writeback.as_array().unwrap() {
        assert_eq!(plan["applied"], false);
        assert!(plan["counts"]["planned"].as_u64().unwrap() > 0, "{plan}");
    }
}
