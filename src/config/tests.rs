//! Config loading as admins see it.
//!
//! Most behaviour is specified by the corpus in `tests/config-corpus/`: each
//! case is a directory with a `journeyd.toml`, a `journey.toml` and the exact
//! report expected from loading them (`expected.txt`, paths relative to the
//! case; empty when the config is valid). `UPDATE_EXPECT=1` rewrites the
//! expectations from what the code says now, for review in the diff.

use super::*;
use crate::journey::StageId;
use std::path::{Path, PathBuf};

mod dynamics;
mod salesforce;

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

/// Writes a case to a fresh directory and loads it.
fn load_texts(daemon: &str, journey: &str) -> (tempfile::TempDir, Result<Config, ConfigErrors>) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(dir.path().join("journeyd.toml"), daemon).expect("writable");
    std::fs::write(dir.path().join("journey.toml"), journey).expect("writable");
    let result = load(&dir.path().join("journeyd.toml"));
    (dir, result)
}

const JOURNEY: &str = r#"
name = "Small"
roles = ["sales", "onboarding"]

[[stage]]
id = "decision"
name = "Decision"
owner_role = "sales"
exit_criteria = [{ name = "close_date_set", expr = 'has(record.close_date)' }]

[[stage]]
id = "onboarding"
name = "Onboarding"
owner_role = "onboarding"
"#;

fn loaded(daemon: &str, journey: &str) -> (tempfile::TempDir, Config) {
    match load_texts(daemon, journey) {
        (dir, Ok(config)) => (dir, config),
        (_, Err(errors)) => panic!("unexpected problems:\n{errors}"),
    }
}

#[test]
fn a_relative_state_path_resolves_against_the_config_directory() {
    let (dir, config) = loaded(
        "state_path = \"state/journeyd.sqlite\"\njourney = \"journey.toml\"\n",
        JOURNEY,
    );
    assert_eq!(config.state_path, dir.path().join("state/journeyd.sqlite"));
    assert_eq!(config.path, dir.path().join("journeyd.toml"));
}

#[test]
fn an_absolute_state_path_is_kept_as_written() {
    let (_dir, config) = loaded(
        "state_path = \"/var/lib/journeyd/j.sqlite\"\njourney = \"journey.toml\"\n",
        JOURNEY,
    );
    assert_eq!(config.state_path, Path::new("/var/lib/journeyd/j.sqlite"));
}

#[test]
fn emails_in_role_maps_are_stored_lowercased_and_owner_ids_as_written() {
    let daemon = r#"
state_path = "s.sqlite"
journey = "journey.toml"
[connectors.crm]
kind = "hubspot"
[connectors.crm.roles]
users = { " Ann@Example.COM " = "sales", "005AbC" = "onboarding" }
"#;
    let (_dir, config) = loaded(daemon, JOURNEY);
    let users = &config.connectors[0].roles.users;
    assert_eq!(
        users.get("ann@example.com").map(|r| r.as_str()),
        Some("sales")
    );
    assert_eq!(users.get("005AbC").map(|r| r.as_str()), Some("onboarding"));
}

#[test]
fn the_onboarding_check_defaults_on_when_the_journey_has_an_onboarding_stage() {
    let (_dir, config) = loaded(
        "state_path = \"s.sqlite\"\njourney = \"journey.toml\"\n",
        JOURNEY,
    );
    let onboarding = config.checks.onboarding.expect("the check is on");
    assert_eq!(onboarding.stage, StageId::new("onboarding"));
    assert_eq!(onboarding.after_days, 7);
    assert_eq!(onboarding.subject_contains, "onboarding");
}

#[test]
fn the_onboarding_check_is_off_without_an_onboarding_stage_or_when_disabled() {
    let journey = JOURNEY.replace("id = \"onboarding\"", "id = \"kickoff\"");
    let (_dir, config) = loaded(
        "state_path = \"s.sqlite\"\njourney = \"journey.toml\"\n",
        &journey,
    );
    assert!(config.checks.onboarding.is_none());

    let daemon = "state_path = \"s.sqlite\"\njourney = \"journey.toml\"\n[checks]\ndisabled = [\"missing_onboarding_task\"]\n";
    let (_dir, config) = loaded(daemon, JOURNEY);
    assert!(config.checks.onboarding.is_none());
}

#[test]
fn the_onboarding_subject_is_stored_lowercased() {
    let daemon = "state_path = \"s.sqlite\"\njourney = \"journey.toml\"\n[checks.missing_onboarding_task]\nsubject_contains = \"Kick-Off Call\"\n";
    let (_dir, config) = loaded(daemon, JOURNEY);
    let onboarding = config.checks.onboarding.expect("the check is on");
    assert_eq!(onboarding.subject_contains, "kick-off call");
    assert_eq!(onboarding.stage, StageId::new("onboarding"));
}

#[test]
fn defaults_apply_when_optional_tables_are_absent() {
    let (_dir, config) = loaded(
        "state_path = \"s.sqlite\"\njourney = \"journey.toml\"\n",
        JOURNEY,
    );
    assert_eq!(config.schedule.timezone, chrono_tz::UTC);
    assert_eq!(config.schedule.sync.as_str(), "0 */15 * * * *");
    assert_eq!(config.schedule.audit.as_str(), "0 0 2 * * *");
    assert_eq!(config.writeback.mode, WritebackMode::DryRun);
    assert_eq!(config.writeback.max_writes_per_run.get(), 100);
    assert_eq!(config.writeback.task_due_days, 3);
    assert_eq!(config.writeback.task_objects.len(), 4);
    assert!(config.writeback.fields.is_empty());
    assert!(config.custom_rules.is_empty());
}

#[test]
fn today_and_days_in_stage_follow_the_schedules_time_zone() {
    let (_dir, config) = loaded(
        "state_path = \"s.sqlite\"\njourney = \"journey.toml\"\n[schedule]\ntimezone = \"America/New_York\"\n",
        JOURNEY,
    );
    // 02:00 UTC on 2 March is still 1 March, 21:00, in New York.
    let now = chrono::DateTime::parse_from_rfc3339("2026-03-02T02:00:00Z")
        .unwrap()
        .to_utc();
    assert_eq!(
        config.schedule.today(now),
        chrono::NaiveDate::from_ymd_opt(2026, 3, 1).unwrap()
    );
    assert_eq!(config.journey.timezone, chrono_tz::America::New_York);
}

#[test]
fn the_journey_path_in_reports_is_joined_to_the_config_path_as_given() {
    let case = Path::new("tests/config-corpus/03-journey-problems");
    let report = match load(&case.join("journeyd.toml")) {
        Ok(_) => panic!("the case has problems"),
        Err(errors) => errors.to_string(),
    };
    assert!(
        report.contains("\ntests/config-corpus/03-journey-problems/journey.toml:"),
        "{report}"
    );
}

#[test]
fn a_literal_refresh_token_or_url_password_never_appears_in_the_report() {
    for (case, secrets) in [
        (
            "38-hubspot-oauth",
            &["na1-5e2f-0000-refresh-literal", "na1-literal-in-a-table"][..],
        ),
        ("37-hubspot-urls", &["hunter2"][..]),
    ] {
        let case = corpus_dir().join(case);
        let report = render(&case);
        let config = std::fs::read_to_string(case.join("journeyd.toml")).unwrap_or_default();
        for secret in secrets {
            assert!(config.contains(secret), "the case still holds `{secret}`");
            assert!(
                !report.contains(secret),
                "`{secret}` leaked into:\n{report}"
            );
        }
    }
}

fn hubspot_of(config: &Config) -> &HubspotConnection {
    match &config.connectors[0].connection {
        Connection::Hubspot(hubspot) => hubspot,
        _ => panic!("connector 0 is not a hubspot connection"),
    }
}

#[test]
fn a_hubspot_connector_defaults_to_the_public_api_a_private_app_and_every_object() {
    use journeyd_connector::ObjectKind;
    let daemon = r#"
state_path = "s.sqlite"
journey = "journey.toml"
[connectors.crm]
kind = "hubspot"
secret = { env = "TOKEN" }
[connectors.crm.fields]
hs_close_reason = "close_reason"
[connectors.crm.lifecycle]
field = "lifecyclestage"
"#;
    let (_dir, config) = loaded(daemon, JOURNEY);
    let hubspot = hubspot_of(&config);
    let settings = &hubspot.settings;
    assert_eq!(settings.api_url.as_str(), "https://api.hubapi.com/");
    assert_eq!(settings.auth, journeyd_hubspot::HubspotAuth::PrivateApp);
    assert_eq!(hubspot.refresh_token, None);
    assert_eq!(settings.properties, ["hs_close_reason"]);
    assert_eq!(
        settings.lifecycle_property.as_deref(),
        Some("lifecyclestage")
    );
    assert!(settings.lifecycle_forward_only);
    assert_eq!(settings.limits.general.0.get(), 100);
    assert_eq!(settings.limits.general.1.as_secs(), 10);
    assert_eq!(settings.search_limit.get(), 200);
    assert_eq!(
        config.connectors[0].objects,
        [ObjectKind::Deal, ObjectKind::Contact, ObjectKind::Account].into()
    );
}

#[test]
fn oauth_on_loopback_takes_every_knob_and_derives_the_token_url_from_the_api_url() {
    use journeyd_connector::ObjectKind;
    let path = corpus_dir()
        .join("41-valid-hubspot-oauth-on-loopback")
        .join("journeyd.toml");
    let config = load(&path).unwrap_or_else(|errors| panic!("{errors}"));
    let hubspot = hubspot_of(&config);
    let settings = &hubspot.settings;
    assert_eq!(settings.api_url.as_str(), "http://127.0.0.1:8080/");
    match &settings.auth {
        journeyd_hubspot::HubspotAuth::OAuth {
            client_id,
            token_url,
        } => {
            assert_eq!(client_id, "5f1e0c1b-app");
            assert_eq!(token_url.as_str(), "http://127.0.0.1:8080/oauth/v3/token");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        hubspot.refresh_token,
        Some(SecretRef::Env("JOURNEYD_HUBSPOT_REFRESH_TOKEN".into()))
    );
    assert_eq!(settings.portal_id.as_deref(), Some("1234567"));
    assert!(!settings.lifecycle_forward_only);
    assert_eq!(
        (
            settings.limits.general.0.get(),
            settings.limits.general.1.as_secs()
        ),
        (190, 10)
    );
    assert_eq!(settings.limits.search.map(|(n, _)| n.get()), Some(5));
    assert_eq!(
        (settings.retry.budget, settings.retry.max_attempts.get()),
        (50, 3)
    );
    assert_eq!(
        (settings.retry.max_retry_after, settings.retry.max_body),
        (std::time::Duration::from_secs(90), 16 << 20)
    );
    assert_eq!(
        (
            settings.list_limit.get(),
            settings.search_cap.get(),
            settings.batch_limit.get(),
            settings.overlap.as_secs()
        ),
        (50, 10_000, 10, 0)
    );
    assert_eq!(config.connectors[0].connection.batch_limit().get(), 10);
    assert_eq!(
        config.connectors[0].objects,
        [ObjectKind::Deal, ObjectKind::Contact].into()
    );
    let Connection::Dynamics(dynamics) = &config.connectors[1].connection else {
        panic!("a dynamics connection");
    };
    assert_eq!(
        (
            dynamics.settings.url.as_str(),
            dynamics.settings.tenant.as_str(),
            dynamics.settings.page_size.get()
        ),
        ("http://127.0.0.1:8081/", "contoso.onmicrosoft.com", 500)
    );
    assert_eq!(config.connectors[1].objects, [ObjectKind::Lead].into());
}

fn hubspot_task_reading(config: &Config) -> journeyd_hubspot::TaskReading {
    let connector = config
        .connectors
        .iter()
        .find(|c| c.name.as_str() == "hubspot")
        .expect("a hubspot connector");
    match &connector.connection {
        Connection::Hubspot(hubspot) => hubspot.settings.read_tasks.clone(),
        _ => panic!("hubspot has HubSpot settings"),
    }
}

#[test]
fn hubspot_reads_tasks_only_of_the_deals_the_onboarding_check_looks_at() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/journeyd.toml");
    let config = load(&path).expect("the shipped config loads");
    assert_eq!(
        hubspot_task_reading(&config),
        journeyd_hubspot::TaskReading::InStages(["closedwon".to_owned()].into())
    );
}

#[test]
fn a_rule_that_looks_at_tasks_makes_hubspot_read_every_deals_tasks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let daemon = std::fs::read_to_string(root.join("journeyd.toml")).expect("readable");
    let journey = std::fs::read_to_string(root.join("journey.toml")).expect("readable");
    let daemon = format!(
        "{daemon}\n[[rules]]\nid = \"no_open_task\"\ncondition = 'size(record.open_tasks) == 0'\nseverity = \"low\"\nmessage = \"{{record}} has no open task\"\n"
    );
    let (_dir, config) = load_texts(&daemon, &journey);
    let config = config.unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(
        hubspot_task_reading(&config),
        journeyd_hubspot::TaskReading::Every
    );
}

const MINIMAL: &str = "state_path = \"s.sqlite\"\njourney = \"journey.toml\"\n";

#[test]
fn no_service_table_means_no_health_listener() {
    let (_dir, config) = loaded(MINIMAL, JOURNEY);
    assert_eq!(config.service.health_listen, None);
    let (_dir, config) = loaded(&format!("{MINIMAL}[service]\n"), JOURNEY);
    assert_eq!(config.service.health_listen, None);
}

#[test]
fn a_loopback_health_listener_is_accepted_on_either_ip_version() {
    for address in ["127.0.0.1:9464", "[::1]:9464", "127.0.0.2:0"] {
        let daemon = format!("{MINIMAL}[service]\nhealth_listen = \"{address}\"\n");
        let (_dir, config) = loaded(&daemon, JOURNEY);
        assert_eq!(
            config.service.health_listen,
            Some(address.parse().unwrap()),
            "{address}"
        );
    }
}

#[test]
fn a_public_health_listener_is_refused_without_health_public_naming_its_line() {
    let daemon = format!("{MINIMAL}[service]\nhealth_listen = \"0.0.0.0:9464\"\n");
    let (_dir, result) = load_texts(&daemon, JOURNEY);
    let report = result.map(|_| ()).unwrap_err().to_string();
    assert!(
        report.contains(
            "journeyd.toml:4:17: service: `health_listen` `0.0.0.0:9464` is not a loopback address; set `health_public = true` to expose it"
        ),
        "{report}"
    );
    let daemon =
        format!("{MINIMAL}[service]\nhealth_listen = \"[::]:9464\"\nhealth_public = false\n");
    let (_dir, result) = load_texts(&daemon, JOURNEY);
    assert!(result.is_err(), "`health_public = false` exposes nothing");
}

#[test]
fn a_public_health_listener_is_accepted_with_health_public() {
    let daemon =
        format!("{MINIMAL}[service]\nhealth_listen = \"0.0.0.0:9464\"\nhealth_public = true\n");
    let (_dir, config) = loaded(&daemon, JOURNEY);
    assert_eq!(
        config.service.health_listen,
        Some("0.0.0.0:9464".parse().unwrap())
    );
}

#[test]
fn records_keep_one_task_each_unless_the_config_says_per_violation() {
    let daemon = r#"
state_path = "s.sqlite"
journey = "journey.toml"
"#;
    let (_dir, config) = loaded(daemon, JOURNEY);
    assert_eq!(config.writeback.tasks, crate::config::TaskMode::PerRecord);
    let (_dir, config) = loaded(
        &format!("{daemon}[writeback]\ntasks = \"per_violation\"\n"),
        JOURNEY,
    );
    assert_eq!(
        config.writeback.tasks,
        crate::config::TaskMode::PerViolation
    );
}

#[test]
fn fallback_owners_are_kept_by_role_with_emails_lowercased() {
    let daemon = r#"
state_path = "s.sqlite"
journey = "journey.toml"
[connectors.crm]
kind = "hubspot"
fallback_owners = { sales = " Sam@Example.COM ", onboarding = "005AbC" }
"#;
    let (_dir, config) = loaded(daemon, JOURNEY);
    let fallbacks = &config.connectors[0].fallback_owners;
    let of = |role: &str| {
        fallbacks
            .get(&crate::journey::RoleId::new(role))
            .map(String::as_str)
    };
    assert_eq!(of("sales"), Some("sam@example.com"));
    assert_eq!(of("onboarding"), Some("005AbC"));
}
