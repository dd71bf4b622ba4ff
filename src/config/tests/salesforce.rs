//! A `kind = "salesforce"` connector's connection keys as admins see them:
//! the defaults, every knob taken, and each rule a value must keep.

use super::{JOURNEY, corpus_dir, load_texts, loaded};
use crate::config::{Config, Connection, SalesforceConnection, SecretRef, load};
use journeyd_connector::ObjectKind;
use journeyd_salesforce::SalesforceAuth;

fn salesforce_of(config: &Config) -> &SalesforceConnection {
    match &config.connectors[0].connection {
        Connection::Salesforce(salesforce) => salesforce,
        _ => panic!("connector 0 is not a salesforce connection"),
    }
}

const HEAD: &str = "state_path = \"s.sqlite\"\njourney = \"journey.toml\"\n[connectors.crm]\nkind = \"salesforce\"\n";
const JWT: &str = "client_id = \"3MVG9-key\"\nusername = \"journeyd@example.com\"\nsecret = { credential = \"sf-key\" }\n";

/// The report for a connector table written after [`HEAD`].
fn problems(table: &str) -> String {
    match load_texts(&format!("{HEAD}{table}"), JOURNEY) {
        (_, Ok(_)) => String::new(),
        (_, Err(errors)) => errors.to_string(),
    }
}

#[test]
fn a_salesforce_connector_defaults_to_production_login_jwt_and_every_object() {
    let daemon = format!(
        "{HEAD}{JWT}[connectors.crm.fields]\n\"deal.Pain_Points__c\" = \"pain_points\"\n[connectors.crm.lifecycle]\nfield = \"Journey_Status__c\"\n"
    );
    let (_dir, config) = loaded(&daemon, JOURNEY);
    let salesforce = salesforce_of(&config);
    let settings = &salesforce.settings;
    assert_eq!(settings.login_url.as_str(), "https://login.salesforce.com/");
    assert_eq!(
        settings.auth,
        SalesforceAuth::JwtBearer {
            client_id: "3MVG9-key".into(),
            username: "journeyd@example.com".into()
        }
    );
    assert_eq!(salesforce.refresh_token, None);
    assert_eq!(
        config.connectors[0].secret,
        Some(SecretRef::Credential("sf-key".into()))
    );
    assert_eq!(
        settings.instance_hosts,
        ["*.my.salesforce.com", "*.salesforce.com"]
    );
    assert_eq!(settings.api_version, "v62.0");
    assert_eq!(settings.jwt_audience, None);
    assert_eq!(
        settings.properties,
        [(ObjectKind::Deal, vec!["Pain_Points__c".to_owned()])].into()
    );
    assert_eq!(
        config.connectors[0].fields,
        [("Pain_Points__c".to_owned(), "pain_points".to_owned())].into()
    );
    assert_eq!(
        settings.lifecycle_field.as_deref(),
        Some("Journey_Status__c")
    );
    assert_eq!(
        (
            settings.limits.general.0.get(),
            settings.limits.general.1.as_secs()
        ),
        (25, 1)
    );
    assert_eq!(settings.daily_stop_share, 0.8);
    assert_eq!(
        (settings.query_batch.get(), settings.batch_limit.get()),
        (2000, 200)
    );
    assert_eq!(settings.task_external_id, None);
    assert_eq!(settings.account_stage_field, None);
    assert_eq!(config.connectors[0].objects, ObjectKind::ALL.into());
    assert_eq!(config.connectors[0].connection.batch_limit().get(), 200);
}

#[test]
fn a_refresh_token_connector_on_loopback_takes_every_knob() {
    let path = corpus_dir()
        .join("45-valid-salesforce-refresh-token-on-loopback")
        .join("journeyd.toml");
    let config = load(&path).unwrap_or_else(|errors| panic!("{errors}"));
    let salesforce = salesforce_of(&config);
    let settings = &salesforce.settings;
    assert_eq!(settings.login_url.as_str(), "http://127.0.0.1:8443/");
    assert_eq!(
        settings.instance_hosts,
        ["127.0.0.1", "*.my.salesforce.com"]
    );
    assert_eq!(settings.api_version, "v61.0");
    assert_eq!(
        settings.auth,
        SalesforceAuth::RefreshToken {
            client_id: "3MVG9-consumer-key".into()
        }
    );
    assert_eq!(
        salesforce.refresh_token,
        Some(SecretRef::Env("JOURNEYD_SALESFORCE_REFRESH_TOKEN".into()))
    );
    assert_eq!(
        config.connectors[0].secret,
        Some(SecretRef::Credential("salesforce-client-secret".into()))
    );
    assert_eq!(
        settings.account_stage_field.as_deref(),
        Some("Customer_Stage__c")
    );
    assert_eq!(
        settings.task_external_id.as_deref(),
        Some("Journeyd_Key__c")
    );
    assert_eq!(
        (
            settings.limits.general.0.get(),
            settings.limits.general.1.as_secs()
        ),
        (10, 2)
    );
    assert_eq!(settings.daily_stop_share, 0.5);
    assert_eq!(
        (settings.retry.budget, settings.retry.max_attempts.get()),
        (20, 4)
    );
    assert_eq!(
        (
            settings.query_batch.get(),
            settings.batch_limit.get(),
            settings.overlap.as_secs()
        ),
        (500, 50, 30)
    );
    assert_eq!(
        settings.properties,
        [
            (ObjectKind::Account, vec!["Decision_Maker__c".to_owned()]),
            (
                ObjectKind::Deal,
                vec![
                    "Decision_Maker__c".to_owned(),
                    "Journey_Status__c".to_owned()
                ]
            ),
        ]
        .into()
    );
    assert_eq!(
        settings.lifecycle_field.as_deref(),
        Some("Journey_Status__c")
    );
    assert_eq!(
        config.connectors[0].objects,
        [ObjectKind::Deal, ObjectKind::Account].into()
    );
}

#[test]
fn jwt_without_a_username_is_refused() {
    let report = problems("client_id = \"3MVG9-key\"\nsecret = { credential = \"sf-key\" }\n");
    assert!(
        report.contains("connector `crm`: missing key `username`"),
        "{report}"
    );
}

#[test]
fn the_refresh_token_flow_without_a_refresh_token_is_refused() {
    let report = problems(
        "auth = \"refresh_token\"\nclient_id = \"3MVG9-key\"\nsecret = { env = \"SF_SECRET\" }\n",
    );
    assert!(
        report.contains("connector `crm`: missing key `refresh_token`"),
        "{report}"
    );
}

#[test]
fn a_plain_http_login_url_to_a_remote_host_is_refused() {
    let report = problems(&format!(
        "{JWT}login_url = \"http://test.salesforce.com\"\n"
    ));
    assert!(
        report.contains("`login_url` `http://test.salesforce.com` uses plain http"),
        "{report}"
    );
    assert_eq!(
        problems(&format!("{JWT}login_url = \"http://localhost:8443\"\n")),
        ""
    );
}

#[test]
fn an_api_version_not_shaped_like_v62_0_is_refused() {
    for bad in ["62.0", "v62", "v62.00", "V62.0", "latest"] {
        let report = problems(&format!("{JWT}api_version = \"{bad}\"\n"));
        assert!(
            report.contains(&format!(
                "`api_version` `{bad}` is not a Salesforce API version"
            )),
            "{bad}: {report}"
        );
    }
}

#[test]
fn a_daily_stop_share_outside_zero_to_one_is_refused_and_one_is_taken() {
    for bad in ["0.0", "-0.5", "1.01", "nan"] {
        let report = problems(&format!(
            "{JWT}[connectors.crm.limits]\ndaily_stop_share = {bad}\n"
        ));
        assert!(
            report.contains("`limits.daily_stop_share` must be more than 0 and at most 1"),
            "{bad}: {report}"
        );
    }
    let daemon = format!("{HEAD}{JWT}[connectors.crm.limits]\ndaily_stop_share = 1.0\n");
    let (_dir, config) = loaded(&daemon, JOURNEY);
    assert_eq!(salesforce_of(&config).settings.daily_stop_share, 1.0);
}

#[test]
fn a_write_batch_over_200_records_is_refused() {
    let report = problems(&format!(
        "{JWT}[connectors.crm.paging]\nbatch_limit = 201\n"
    ));
    assert!(
        report.contains("`paging.batch_limit` must be at most 200, not `201`"),
        "{report}"
    );
}

#[test]
fn a_query_batch_outside_200_to_2000_is_refused() {
    let report = problems(&format!(
        "{JWT}[connectors.crm.paging]\nquery_batch = 199\n"
    ));
    assert!(
        report.contains("`paging.query_batch` must be at least 200, not `199`"),
        "{report}"
    );
    let report = problems(&format!(
        "{JWT}[connectors.crm.paging]\nquery_batch = 2001\n"
    ));
    assert!(
        report.contains("`paging.query_batch` must be at most 2000, not `2001`"),
        "{report}"
    );
}

#[test]
fn mapped_account_stages_need_the_field_that_holds_them_only_when_accounts_are_synced() {
    let stages = "[connectors.crm.stages.account]\n\"Onboarding\" = \"onboarding\"\n";
    let report = problems(&format!("{JWT}{stages}"));
    assert!(
        report.contains("`stages.account` maps account stages, but `account_stage_field`"),
        "{report}"
    );
    assert_eq!(
        problems(&format!("{JWT}objects = [\"deal\"]\n{stages}")),
        ""
    );
    assert_eq!(
        problems(&format!(
            "{JWT}account_stage_field = \"Customer_Stage__c\"\n{stages}"
        )),
        ""
    );
}

#[test]
fn a_task_external_id_that_is_not_a_custom_field_is_refused() {
    let report = problems(&format!("{JWT}task_external_id = \"Subject\"\n"));
    assert!(
        report.contains("`task_external_id` `Subject` is not a custom field"),
        "{report}"
    );
}

#[test]
fn a_field_map_key_that_does_not_name_its_object_is_refused() {
    let report = problems(&format!(
        "{JWT}[connectors.crm.fields]\nPain_Points__c = \"pain_points\"\n"
    ));
    assert!(
        report.contains("`fields` key `Pain_Points__c` does not name its object"),
        "{report}"
    );
    let report = problems(&format!(
        "{JWT}[connectors.crm.fields]\n\"opportunity.Pain_Points__c\" = \"pain_points\"\n"
    ));
    assert!(
        report.contains("unknown object kind `opportunity`"),
        "{report}"
    );
}

#[test]
fn one_field_mapped_to_two_canonical_names_on_two_objects_is_refused() {
    let report = problems(&format!(
        "{JWT}[connectors.crm.fields]\n\"deal.Region__c\" = \"region\"\n\"account.Region__c\" = \"territory\"\n"
    ));
    assert!(
        report.contains("`fields` maps `Region__c` to `region` here but to `territory`"),
        "{report}"
    );
}

#[test]
fn a_my_domain_login_keeps_the_jwt_audience_it_is_given_without_a_trailing_slash() {
    let daemon = format!(
        "{HEAD}{JWT}login_url = \"https://acme.my.salesforce.com\"\njwt_audience = \"https://login.salesforce.com/\"\n"
    );
    let (_dir, config) = loaded(&daemon, JOURNEY);
    let settings = &salesforce_of(&config).settings;
    assert_eq!(
        settings.login_url.as_str(),
        "https://acme.my.salesforce.com/"
    );
    assert_eq!(
        settings.jwt_audience.as_deref(),
        Some("https://login.salesforce.com")
    );
}
