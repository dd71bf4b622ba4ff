//! Who a corrective task goes to: the record's owner when they are an
//! active owner the CRM knows; else the fallback owner the connector's
//! config names for the role accountable at the record's stage; else
//! nobody, and the task is not created. Never an unassigned task.

use crate::journey::RoleId;
use journeyd_connector::{ConnectorName, Owner, OwnerId};
use serde::Serialize;
use std::collections::BTreeMap;

/// The record's owner as the store knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordOwner {
    pub id: OwnerId,
    /// `None`: not among the connector's owners.
    pub active: Option<bool>,
    pub name: Option<String>,
}

impl RecordOwner {
    /// The owner the store names for a record, if it names one.
    pub fn of(id: Option<&OwnerId>, active: Option<bool>, name: Option<&str>) -> Option<Self> {
        id.map(|id| RecordOwner {
            id: id.clone(),
            active,
            name: name.map(str::to_owned),
        })
    }
}

/// Whom a task is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Assignee {
    /// The record's own, active owner.
    Owner { id: OwnerId, name: Option<String> },
    /// The role's fallback owner, because the record's owner cannot take it.
    Fallback {
        id: OwnerId,
        name: String,
        role: RoleId,
        because: String,
    },
    /// Nobody can take it: the task is not created, for this reason.
    Nobody { reason: String },
}

impl Assignee {
    pub fn owner_id(&self) -> Option<&OwnerId> {
        match self {
            Assignee::Owner { id, .. } | Assignee::Fallback { id, .. } => Some(id),
            Assignee::Nobody { .. } => None,
        }
    }

    /// Why nobody can take the task, if nobody can.
    pub fn nobody(&self) -> Option<&str> {
        match self {
            Assignee::Nobody { reason } => Some(reason),
            Assignee::Owner { .. } | Assignee::Fallback { .. } => None,
        }
    }

    /// Why the task goes to a fallback owner, if it does.
    pub fn fallback_note(&self) -> Option<String> {
        match self {
            Assignee::Fallback {
                because,
                role,
                name,
                ..
            } => Some(format!(
                "{because}; given to {name}, the fallback owner of role {role}"
            )),
            Assignee::Owner { .. } | Assignee::Nobody { .. } => None,
        }
    }

    /// The owner's name, or their id.
    pub fn label(&self) -> Option<String> {
        match self {
            Assignee::Owner { id, name } => Some(name.clone().unwrap_or_else(|| id.to_string())),
            Assignee::Fallback { name, .. } => Some(name.clone()),
            Assignee::Nobody { .. } => None,
        }
    }
}

/// The connector's fallback owners, looked up once per plan among its
/// owners: each role's owner, or why that owner cannot take a task.
#[derive(Debug, Clone, Default)]
pub struct Fallbacks {
    connector: String,
    by_role: BTreeMap<RoleId, Result<(OwnerId, String), String>>,
}

impl Fallbacks {
    /// Resolves `connector`'s `fallback_owners` (ids, or lowercased
    /// emails) against its stored `owners`.
    pub fn resolve(
        connector: &ConnectorName,
        fallback_owners: &BTreeMap<RoleId, String>,
        owners: &[Owner],
    ) -> Fallbacks {
        let by_role = fallback_owners
            .iter()
            .map(|(role, wanted)| {
                let found = owners.iter().find(|owner| {
                    owner.id.as_str() == wanted
                        || owner
                            .email
                            .as_deref()
                            .is_some_and(|email| email.trim().eq_ignore_ascii_case(wanted))
                });
                let resolved = match found {
                    Some(owner) if owner.active => Ok((owner.id.clone(), owner.name.clone())),
                    Some(owner) => Err(format!(
                        "its fallback owner {} ({}) is inactive",
                        owner.name, owner.id
                    )),
                    None => Err(format!(
                        "its fallback owner {wanted} is not among the connector's owners"
                    )),
                };
                (role.clone(), resolved)
            })
            .collect();
        Fallbacks {
            connector: connector.to_string(),
            by_role,
        }
    }

    /// Whom a task of a record owned by `owner`, at a stage `role` is
    /// accountable for, goes to.
    pub fn assign(&self, owner: Option<&RecordOwner>, role: Option<&RoleId>) -> Assignee {
        let because = match owner {
            Some(RecordOwner {
                id,
                active: Some(true),
                name,
            }) => {
                return Assignee::Owner {
                    id: id.clone(),
                    name: name.clone(),
                };
            }
            Some(RecordOwner {
                id,
                active: Some(false),
                name,
            }) => match name {
                Some(name) => format!("its owner {name} ({id}) is inactive"),
                None => format!("its owner {id} is inactive"),
            },
            Some(RecordOwner {
                id, active: None, ..
            }) => format!("its owner {id} is not among the connector's owners"),
            None => "it has no owner".to_owned(),
        };
        let Some(role) = role else {
            return Assignee::Nobody {
                reason: format!("{because}, and its stage has no accountable role"),
            };
        };
        match self.by_role.get(role) {
            Some(Ok((id, name))) => Assignee::Fallback {
                id: id.clone(),
                name: name.clone(),
                role: role.clone(),
                because,
            },
            Some(Err(why)) => Assignee::Nobody {
                reason: format!("{because}, and for role {role} {why}"),
            },
            None => Assignee::Nobody {
                reason: format!(
                    "{because}, and no fallback owner is set for role {role} (connectors.{}.fallback_owners.{role})",
                    self.connector
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(id: &str, name: &str, email: &str, active: bool) -> Owner {
        Owner {
            id: OwnerId::new(id),
            name: name.into(),
            email: Some(email.into()),
            active,
            teams: Vec::new(),
        }
    }

    fn fallbacks(map: &[(&str, &str)], owners: &[Owner]) -> Fallbacks {
        let map = map
            .iter()
            .map(|(role, owner)| (RoleId::new(*role), owner.to_lowercase()))
            .collect();
        Fallbacks::resolve(&ConnectorName::new("crm"), &map, owners)
    }

    fn record_owner(id: &str, active: Option<bool>) -> RecordOwner {
        RecordOwner {
            id: OwnerId::new(id),
            active,
            name: Some(format!("Owner {id}")),
        }
    }

    #[test]
    fn an_active_owner_takes_their_records_task() {
        let f = fallbacks(&[], &[]);
        assert_eq!(
            f.assign(Some(&record_owner("7", Some(true))), None),
            Assignee::Owner {
                id: OwnerId::new("7"),
                name: Some("Owner 7".into())
            }
        );
    }

    #[test]
    fn an_inactive_or_unknown_owners_task_goes_to_the_roles_fallback_by_id_or_email() {
        let owners = [
            owner("9", "Sam Sales", "sam@example.com", true),
            owner("8", "Old Lead", "old@example.com", false),
        ];
        let f = fallbacks(&[("sales", "SAM@example.com")], &owners);
        let sales = RoleId::new("sales");
        for who in [record_owner("7", Some(false)), record_owner("6", None)] {
            let Assignee::Fallback { id, role, .. } = f.assign(Some(&who), Some(&sales)) else {
                panic!("{who:?} went to nobody");
            };
            assert_eq!((id.as_str(), role.as_str()), ("9", "sales"));
        }
        assert!(matches!(
            f.assign(None, Some(&sales)),
            Assignee::Fallback { .. }
        ));
    }

    #[test]
    fn without_a_usable_fallback_nobody_gets_the_task_and_the_reason_says_what_to_set() {
        let owners = [owner("8", "Old Lead", "old@example.com", false)];
        let f = fallbacks(&[("onboarding", "8")], &owners);
        let inactive = record_owner("7", Some(false));
        let Assignee::Nobody { reason } = f.assign(Some(&inactive), Some(&RoleId::new("sales")))
        else {
            panic!("assigned")
        };
        assert_eq!(
            reason,
            "its owner Owner 7 (7) is inactive, and no fallback owner is set for role sales (connectors.crm.fallback_owners.sales)"
        );
        let Assignee::Nobody { reason } =
            f.assign(Some(&inactive), Some(&RoleId::new("onboarding")))
        else {
            panic!("assigned to an inactive fallback")
        };
        assert!(
            reason.ends_with("its fallback owner Old Lead (8) is inactive"),
            "{reason}"
        );
        let Assignee::Nobody { reason } = f.assign(None, None) else {
            panic!("assigned")
        };
        assert_eq!(
            reason,
            "it has no owner, and its stage has no accountable role"
        );
    }
}
