//! A `kind = "dynamics"` connector's connection keys as admins see them:
//! the defaults, every knob taken, and each rule a value must keep.

use super::{JOURNEY, load_texts, loaded};
use crate::config::{Config, Connection, DynamicsConnection, SecretRef};
use journeyd_connector::ObjectKind;

fn dynamics_of(config: &Config) -> &DynamicsConnection {
    match &config.connectors[0].connection {
        Connection::Dynamics(dynamics) => dynamics,
        _ => panic!("connector 0 is not a dynamics connection"),
    }
}

const HEAD: &str = "state_path = \"s.sqlite\"\njourney = \"journey.toml\"\n[connectors.crm]\nkind = \"dynamics\"\n";
const APP: &str = "api_url = \"https://contoso.crm.dynamics.com\"\ntenant = \"contoso.onmicrosoft.com\"\nclient_id = \"7D1B5C7E-2F0A-4C53-9A51-6F3B8E1D2C44\"\nsecret = { credential = \"dynamics-secret\" }\n";

/// The report for a connector table written after [`HEAD`].
fn problems(table: &str) -> String {
    match load_texts(&format!("{HEAD}{table}"), JOURNEY) {
        (_, Ok(_)) => String::new(),
        (_, Err(errors)) => errors.to_string(),
    }
}

#[test]
fn a_dynamics_connector_defaults_to_the_published_service_limits_and_change_tracking() {
    let daemon = format!(
        "{HEAD}{APP}[connectors.crm.fields]\n\"deal.new_budgetconfirmed\" = \"budget_confirmed\"\n"
    );
    let (_dir, config) = loaded(&daemon, JOURNEY);
    let settings = &dynamics_of(&config).settings;
    assert_eq!(settings.url.as_str(), "https://contoso.crm.dynamics.com/");
    assert_eq!(settings.api_version, "v9.2");
    assert_eq!(
        settings.authority.as_str(),
        "https://login.microsoftonline.com/"
    );
    assert_eq!(settings.tenant, "contoso.onmicrosoft.com");
    assert_eq!(settings.client_id, "7d1b5c7e-2f0a-4c53-9a51-6f3b8e1d2c44");
    assert_eq!(settings.scope, None);
    assert_eq!(
        config.connectors[0].secret,
        Some(SecretRef::Credential("dynamics-secret".into()))
    );
    assert_eq!(
        (
            settings.limits.general.0.get(),
            settings.limits.general.1.as_secs(),
            settings.max_concurrent.get()
        ),
        (6000, 300, 52)
    );
    assert_eq!(
        (settings.page_size.get(), settings.batch_limit.get()),
        (5000, 1000)
    );
    assert_eq!(settings.change_tracking, ObjectKind::ALL.into());
    assert_eq!(
        (
            settings.deal_stage_field.as_str(),
            settings.lead_stage_field.as_str()
        ),
        ("salesstage", "statuscode")
    );
    assert_eq!(
        settings.properties,
        [(ObjectKind::Deal, vec!["new_budgetconfirmed".to_owned()])].into()
    );
    assert_eq!(
        config.connectors[0].fields,
        [(
            "new_budgetconfirmed".to_owned(),
            "budget_confirmed".to_owned()
        )]
        .into()
    );
}

#[test]
fn every_dynamics_knob_is_taken() {
    let daemon = format!(
        "{HEAD}{APP}api_version = \"v9.1\"\nauthority_url = \"https://login.microsoftonline.us\"\nscope = \"https://contoso.crm9.dynamics.com/.default\"\ndeal_stage_field = \"stepname\"\nlead_stage_field = \"statecode\"\naccount_stage_field = \"new_customerstage\"\ntask_alternate_key = \"new_journeydkey\"\nchange_tracking = [\"deal\"]\n[connectors.crm.limits]\nrequests = 3000\nper_seconds = 300\nmax_concurrent = 8\n[connectors.crm.paging]\npage_size = 1000\nbatch_limit = 500\ntask_lookup_ids = 50\noverlap_seconds = 0\n"
    );
    let (_dir, config) = loaded(&daemon, JOURNEY);
    let settings = &dynamics_of(&config).settings;
    assert_eq!(settings.api_version, "v9.1");
    assert_eq!(
        settings.authority.as_str(),
        "https://login.microsoftonline.us/"
    );
    assert_eq!(
        settings.scope.as_deref(),
        Some("https://contoso.crm9.dynamics.com/.default")
    );
    assert_eq!(
        (
            settings.deal_stage_field.as_str(),
            settings.lead_stage_field.as_str(),
            settings.account_stage_field.as_deref(),
            settings.task_alternate_key.as_deref()
        ),
        (
            "stepname",
            "statecode",
            Some("new_customerstage"),
            Some("new_journeydkey")
        )
    );
    assert_eq!(settings.change_tracking, [ObjectKind::Deal].into());
    assert_eq!(
        (
            settings.limits.general.0.get(),
            settings.max_concurrent.get(),
            settings.page_size.get(),
            settings.batch_limit.get(),
            settings.task_lookup_ids.get(),
            settings.overlap.as_secs()
        ),
        (3000, 8, 1000, 500, 50, 0)
    );
}

#[test]
fn a_dynamics_connector_names_the_environment_tenant_app_and_secret_it_lacks() {
    let report = problems("");
    for key in ["api_url", "tenant", "client_id", "secret"] {
        assert!(
            report.contains(&format!("missing key `{key}`")),
            "{key}: {report}"
        );
    }
}

#[test]
fn a_tenant_that_could_change_the_token_path_is_refused() {
    let report = problems(&APP.replace("contoso.onmicrosoft.com", "common/../evil"));
    assert!(
        report.contains("`tenant` `common/../evil` is neither a tenant id (a GUID) nor a domain"),
        "{report}"
    );
}

#[test]
fn a_client_id_that_is_not_a_guid_is_refused() {
    let report = problems(&APP.replace("7D1B5C7E-2F0A-4C53-9A51-6F3B8E1D2C44", "journeyd-app"));
    assert!(
        report.contains("`client_id` `journeyd-app` is not a GUID"),
        "{report}"
    );
}

#[test]
fn pages_past_5000_and_batches_past_1000_are_refused() {
    let report = problems(&format!(
        "{APP}[connectors.crm.paging]\npage_size = 5001\nbatch_limit = 1001\n"
    ));
    assert!(
        report.contains("`paging.page_size` must be at most 5000, not `5001`"),
        "{report}"
    );
    assert!(
        report.contains("`paging.batch_limit` must be at most 1000, not `1001`"),
        "{report}"
    );
}

#[test]
fn a_field_map_key_must_name_its_table_and_a_column_logical_name() {
    let report = problems(&format!(
        "{APP}[connectors.crm.fields]\nnew_budgetconfirmed = \"budget_confirmed\"\n\"deal.New_Budget\" = \"budget\"\n"
    ));
    assert!(
        report.contains("since Dataverse refuses a query naming a field its object lacks"),
        "{report}"
    );
    assert!(
        report.contains("`New_Budget` is not a Dataverse column logical name"),
        "{report}"
    );
}

#[test]
fn an_api_version_not_shaped_like_v9_2_is_refused() {
    let report = problems(&format!("{APP}api_version = \"9.2\"\n"));
    assert!(
        report.contains("`api_version` `9.2` is not a Dataverse Web API version"),
        "{report}"
    );
}

#[test]
fn mapped_account_stages_need_the_column_that_holds_them() {
    let report = problems(&format!(
        "{APP}[connectors.crm.stages.account]\nOnboarding = \"onboarding\"\n"
    ));
    assert!(
        report.contains("`account_stage_field` does not say which account column holds them"),
        "{report}"
    );
}

#[test]
fn dynamics_keys_are_refused_by_name_on_other_kinds() {
    let daemon = "state_path = \"s.sqlite\"\njourney = \"journey.toml\"\n[connectors.crm]\nkind = \"hubspot\"\ntenant = \"contoso.onmicrosoft.com\"\nchange_tracking = [\"deal\"]\n";
    let report = match load_texts(daemon, JOURNEY) {
        (_, Ok(_)) => String::new(),
        (_, Err(errors)) => errors.to_string(),
    };
    assert!(
        report.contains(
            "`tenant` is a setting of `dynamics` connectors; `hubspot` connectors do not take it"
        ),
        "{report}"
    );
    assert!(
        report.contains("`change_tracking` is a setting of `dynamics` connectors"),
        "{report}"
    );
}
