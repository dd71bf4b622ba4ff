//! A [`Connector`] backed by plain vectors, for specifying the sync and
//! write-back loops without HTTP: pages are slices of the vectors, cursors
//! are offsets, the "CRM" remembers every write by its key. The HubSpot
//! connector is specified against its emulator elsewhere.

use chrono::{DateTime, Utc};
use journeyd_connector::connector::PullFrom;
use journeyd_connector::{
    ActionKey, ActionOutcome, ActionRequest, ActionResult, Connector, ConnectorError,
    ConnectorName, CrmRecord, ObjectKind, Owner, Page, RecordId, Skipped,
};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// What the fake CRM holds and what it was asked.
#[derive(Default)]
pub struct FakeCrm {
    pub owners: Vec<Owner>,
    /// Per object, in the order a list from the start returns them.
    pub records: BTreeMap<ObjectKind, Vec<CrmRecord>>,
    /// Returned with the first page of each pull of the object.
    pub skipped: BTreeMap<ObjectKind, Vec<Skipped>>,
    pub deleted: BTreeMap<ObjectKind, Vec<RecordId>>,
    pub page_size: usize,
    /// Every pull asked for, in order.
    pub pulls: Vec<(ObjectKind, PullFrom)>,
    /// The next pull fails with this.
    pub fail_next_pull: Option<ConnectorError>,
    /// Writes held, by key: the request and the id the CRM gave it.
    pub written: BTreeMap<ActionKey, (ActionRequest, String)>,
    /// Every batch sent, by key.
    pub batches: Vec<Vec<ActionKey>>,
    /// Keys the CRM refuses: reason and whether a retry may help.
    pub refuse: BTreeMap<ActionKey, (String, bool)>,
    /// The next `apply` writes its batch, then fails as if the answer was
    /// lost on the way back (a crash, a dropped connection).
    pub lose_next_answer: bool,
    /// Every `find_applied` lookup, by key.
    pub lookups: Vec<Vec<ActionKey>>,
    /// Hand out delta links, as Dataverse change tracking does: the last
    /// page of a pull carries one, and a pull from it returns the records
    /// changed since, with `deleted` in line as `removed`.
    pub delta_links: bool,
    /// Every delta link handed out so far answers "expired".
    pub deltas_expired: bool,
}

pub struct FakeConnector {
    name: ConnectorName,
    objects: Vec<ObjectKind>,
    pub crm: Mutex<FakeCrm>,
}

impl FakeConnector {
    pub fn new(name: &str, objects: &[ObjectKind], crm: FakeCrm) -> Self {
        FakeConnector {
            name: ConnectorName::new(name),
            objects: objects.to_vec(),
            crm: Mutex::new(FakeCrm {
                page_size: crm.page_size.max(1),
                ..crm
            }),
        }
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut FakeCrm) -> T) -> T {
        f(&mut self.crm.lock().expect("the fake CRM's lock"))
    }
}

/// A cursor: where the next page starts, and the watermark the pull began
/// from (`-` for a pull from the start).
fn cursor(offset: usize, since: Option<(DateTime<Utc>, &RecordId)>) -> String {
    match since {
        Some((at, id)) => format!("{offset}|{}|{id}", at.to_rfc3339()),
        None => format!("{offset}|-"),
    }
}

/// A delta link: the newest (modified time, id) the pull that handed it
/// out had seen.
fn delta_link(newest: Option<(DateTime<Utc>, &RecordId)>) -> String {
    match newest {
        Some((at, id)) => format!("delta|{}|{id}", at.to_rfc3339()),
        None => "delta|-".into(),
    }
}

fn parse_cursor(text: &str) -> (usize, Option<(DateTime<Utc>, RecordId)>) {
    let mut parts = text.splitn(3, '|');
    let offset = parts.next().and_then(|o| o.parse().ok()).unwrap_or(0);
    let since = match (parts.next(), parts.next()) {
        (Some(at), Some(id)) => DateTime::parse_from_rfc3339(at)
            .ok()
            .map(|at| (at.with_timezone(&Utc), RecordId::new(id))),
        _ => None,
    };
    (offset, since)
}

impl Connector for FakeConnector {
    fn name(&self) -> &ConnectorName {
        &self.name
    }

    fn objects(&self) -> &[ObjectKind] {
        &self.objects
    }

    async fn owners(&self, cursor: Option<String>) -> Result<Page<Owner>, ConnectorError> {
        let _ = cursor;
        Ok(Page {
            items: self.with(|crm| crm.owners.clone()),
            skipped: Vec::new(),
            next: None,
            ..Page::default()
        })
    }

    async fn pull(
        &self,
        object: ObjectKind,
        from: PullFrom,
    ) -> Result<Page<CrmRecord>, ConnectorError> {
        self.with(|crm| {
            crm.pulls.push((object, from.clone()));
            if let Some(error) = crm.fail_next_pull.take() {
                return Err(error);
            }
            let (offset, since) = match &from {
                PullFrom::Start => (0, None),
                PullFrom::Since(w) => (0, Some((w.modified_at, w.id.clone()))),
                PullFrom::Cursor(c) => parse_cursor(c),
                PullFrom::Delta(_) if crm.deltas_expired => {
                    return Err(ConnectorError::ChangesExpired {
                        connector: self.name.to_string(),
                        object,
                        reason: "the delta token has expired".into(),
                    });
                }
                PullFrom::Delta(link) => (0, parse_cursor(link).1),
            };
            let all = crm.records.get(&object).cloned().unwrap_or_default();
            let selected: Vec<CrmRecord> = match &since {
                None => all,
                Some((at, id)) => {
                    let mut newer: Vec<CrmRecord> = all
                        .into_iter()
                        .filter(|r| (r.modified_at, &r.id) > (*at, id))
                        .collect();
                    newer.sort_by(|a, b| (a.modified_at, &a.id).cmp(&(b.modified_at, &b.id)));
                    newer
                }
            };
            let end = (offset + crm.page_size).min(selected.len());
            let items = selected.get(offset..end).unwrap_or_default().to_vec();
            let next = (end < selected.len())
                .then(|| cursor(end, since.as_ref().map(|(at, id)| (*at, id))));
            let skipped = if offset == 0 {
                crm.skipped.get(&object).cloned().unwrap_or_default()
            } else {
                Vec::new()
            };
            let last = next.is_none();
            let removed = match from {
                PullFrom::Delta(_) => crm.deleted.get(&object).cloned().unwrap_or_default(),
                _ => Vec::new(),
            };
            let delta = (last && crm.delta_links).then(|| {
                let newest = selected
                    .iter()
                    .map(|r| (r.modified_at, &r.id))
                    .max()
                    .or(since.as_ref().map(|(at, id)| (*at, id)));
                delta_link(newest)
            });
            Ok(Page {
                items,
                skipped,
                next,
                removed,
                delta,
            })
        })
    }

    async fn deletions(
        &self,
        object: ObjectKind,
        cursor: Option<String>,
    ) -> Result<Page<RecordId>, ConnectorError> {
        self.with(|crm| {
            let all = crm.deleted.get(&object).cloned().unwrap_or_default();
            let offset = cursor.and_then(|c| c.parse().ok()).unwrap_or(0usize);
            let end = (offset + crm.page_size).min(all.len());
            Ok(Page {
                items: all.get(offset..end).unwrap_or_default().to_vec(),
                skipped: Vec::new(),
                next: (end < all.len()).then(|| end.to_string()),
                ..Page::default()
            })
        })
    }

    async fn apply(&self, actions: &[ActionRequest]) -> Result<Vec<ActionOutcome>, ConnectorError> {
        self.with(|crm| {
            crm.batches
                .push(actions.iter().map(|a| a.key().clone()).collect());
            let mut outcomes = Vec::new();
            for action in actions {
                let key = action.key().clone();
                let result = match crm.refuse.get(&key) {
                    Some((reason, retryable)) => ActionResult::Failed {
                        reason: reason.clone(),
                        retryable: *retryable,
                    },
                    None => {
                        let next_id = format!("crm-{}", crm.written.len() + 1);
                        let crm_id = crm
                            .written
                            .entry(key.clone())
                            .or_insert_with(|| (action.clone(), next_id))
                            .1
                            .clone();
                        ActionResult::Applied { crm_id }
                    }
                };
                outcomes.push(ActionOutcome { key, result });
            }
            if std::mem::take(&mut crm.lose_next_answer) {
                return Err(ConnectorError::Transport {
                    connector: self.name.to_string(),
                    route: "/batch".into(),
                    reason: "connection reset".into(),
                });
            }
            Ok(outcomes)
        })
    }

    fn recovery(&self) -> journeyd_connector::Recovery {
        journeyd_connector::Recovery::LookUp {
            settle: std::time::Duration::ZERO,
        }
    }

    async fn find_applied(
        &self,
        keys: &[ActionKey],
        _since: DateTime<Utc>,
    ) -> Result<Vec<ActionOutcome>, ConnectorError> {
        self.with(|crm| {
            crm.lookups.push(keys.to_vec());
            Ok(keys
                .iter()
                .filter_map(|key| {
                    crm.written.get(key).map(|(_, crm_id)| ActionOutcome {
                        key: key.clone(),
                        result: ActionResult::Applied {
                            crm_id: crm_id.clone(),
                        },
                    })
                })
                .collect())
        })
    }
}
