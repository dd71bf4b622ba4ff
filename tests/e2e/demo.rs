//! `journeyd demo`, the README's first command, on a machine with nothing
//! but the binary: no account, no network, no config.

use crate::support::{journeyd, stderr, stdout};

#[test]
fn the_demo_syncs_an_emulated_portal_audits_it_and_with_apply_writes_its_tasks() {
    let output = journeyd()
        .args(["demo", "--apply"])
        .output()
        .expect("journeyd runs");
    let (out, err) = (stdout(&output), stderr(&output));
    assert!(output.status.success(), "{out}\n{err}");
    for step in [
        "== sync the portal",
        "== audit every record",
        "== the violations log",
        "== stage KPIs",
        "== write-back",
    ] {
        assert!(out.contains(step), "the demo skipped {step:?}:\n{out}");
    }
    let created = out
        .lines()
        .find_map(|line| line.strip_prefix("== tasks now in the portal: "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or_else(|| panic!("no count of tasks created:\n{out}"));
    assert!(created > 100, "{created} tasks created");
}
