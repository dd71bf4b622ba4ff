//! A [`Connector`] backed by plain vectors, for specifying the sync and
//! write-back loops without HTTP: pages are slices of the vectors, cursors
//! are offsets, the "CRM" holds the tasks it was asked to create (twice, if
//! a create is sent twice, unless its creates are idempotent), with a lag
//! before lookups see them, and can lose or garble its answers. Each CRM's
//! connector is specified against its emulator elsewhere.

use chrono::{DateTime, Utc};
use journeyd_connector::connector::PullFrom;
use journeyd_connector::{
    ActionKey, ActionOutcome, ActionRequest, ActionResult, Connector, ConnectorError,
    ConnectorName, CrmRecord, ObjectKind, Owner, Page, RecordId, Recovery, Skipped,
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
    /// Every task the CRM holds, in the order they were made: a create sent
    /// twice makes two, as a real CRM's would, unless the connector's
    /// creates are idempotent (`recovery: Resend`).
    pub tasks: Vec<FakeTask>,
    /// Field values written, by (record id, field).
    pub fields: BTreeMap<(String, String), String>,
    /// Every write applied, by key: the last request and the CRM id.
    pub written: BTreeMap<ActionKey, (ActionRequest, String)>,
    /// Every batch sent, by key.
    pub batches: Vec<Vec<ActionKey>>,
    /// Keys the CRM refuses: reason and whether a retry may help.
    pub refuse: BTreeMap<ActionKey, (String, bool)>,
    /// How the next `apply` answers after it made its writes.
    pub next_answer: Answer,
    /// Creates are idempotent by key (a key the CRM holds answers "it
    /// exists"), and recovery resends; otherwise recovery looks creates up,
    /// `settle` after they were sent.
    pub idempotent_creates: bool,
    pub settle: std::time::Duration,
    /// How long a new task stays out of `find_applied`'s sight (a search
    /// index's lag).
    pub lag: std::time::Duration,
    /// Every `find_applied` lookup: its keys and `since`.
    pub lookups: Vec<(Vec<ActionKey>, DateTime<Utc>)>,
    /// Hand out delta links, as Dataverse change tracking does: the last
    /// page of a pull carries one, and a pull from it returns the records
    /// changed since, with `deleted` in line as `removed`.
    pub delta_links: bool,
    /// Every delta link handed out so far answers "expired".
    pub deltas_expired: bool,
    /// The next this many pulls from a cursor answer that the cursor is
    /// refused, as an idle Salesforce query locator is.
    pub refuse_cursors: usize,
    /// Per object, the next this many pulls answer with a page that
    /// cannot be read.
    pub unreadable: BTreeMap<ObjectKind, usize>,
    /// Objects whose pulls from a cursor hand that same cursor back as
    /// the next page's: paging that never ends.
    pub repeat_cursor: std::collections::BTreeSet<ObjectKind>,
    /// The total every page reports; `None`: how many records the pull
    /// selects.
    pub report_total: Option<u64>,
}

/// How an `apply` answers once its writes are made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Answer {
    #[default]
    Plain,
    /// Lost on the way back: the call fails as a reset connection would.
    Lost,
    /// Unreadable: every outcome is unknown.
    Unreadable,
}

/// A task the fake CRM holds.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeTask {
    pub id: String,
    /// The key its text carries.
    pub key: ActionKey,
    pub record_id: RecordId,
    pub owner_id: Option<journeyd_connector::OwnerId>,
    pub subject: String,
    pub body: String,
    pub open: bool,
    pub deleted: bool,
    created: tokio::time::Instant,
}

impl FakeCrm {
    /// The open, undeleted tasks.
    pub fn open_tasks(&self) -> impl Iterator<Item = &FakeTask> {
        self.tasks.iter().filter(|t| t.open && !t.deleted)
    }

    /// Makes one write, as the CRM would.
    fn write(&mut self, action: &ActionRequest) -> ActionResult {
        let key = action.key().clone();
        if let Some((reason, retryable)) = self.refuse.get(&key) {
            return ActionResult::Failed {
                reason: reason.clone(),
                retryable: *retryable,
            };
        }
        let crm_id = match action {
            ActionRequest::CreateTask {
                record_id,
                owner_id,
                subject,
                body,
                ..
            } => {
                let existing = self.tasks.iter().find(|t| t.key == key);
                match existing {
                    // Idempotent creates (a key the CRM holds answers "it
                    // exists") only where the connector says so.
                    Some(task) if self.idempotent_creates => task.id.clone(),
                    _ => {
                        let id = format!("task-{}", self.tasks.len() + 1);
                        self.tasks.push(FakeTask {
                            id: id.clone(),
                            key: key.clone(),
                            record_id: record_id.clone(),
                            owner_id: owner_id.clone(),
                            subject: subject.clone(),
                            body: key.in_text(body),
                            open: true,
                            deleted: false,
                            created: tokio::time::Instant::now(),
                        });
                        id
                    }
                }
            }
            ActionRequest::UpdateTask {
                task_key,
                task_id,
                owner_id,
                subject,
                body,
                ..
            } => {
                let Some(task) = self
                    .tasks
                    .iter_mut()
                    .find(|t| &t.id == task_id && !t.deleted)
                else {
                    return ActionResult::Failed {
                        reason: format!("task {task_id} does not exist"),
                        retryable: true,
                    };
                };
                task.subject = subject.clone();
                task.body = task_key.in_text(body);
                if owner_id.is_some() {
                    task.owner_id = owner_id.clone();
                }
                task_id.clone()
            }
            ActionRequest::CompleteTask { task_id, .. } => {
                if let Some(task) = self.tasks.iter_mut().find(|t| &t.id == task_id) {
                    task.open = false;
                }
                // A task someone deleted is as good as completed.
                task_id.clone()
            }
            ActionRequest::SetField {
                record_id,
                field,
                value,
                ..
            } => {
                self.fields
                    .insert((record_id.to_string(), field.clone()), value.clone());
                record_id.to_string()
            }
        };
        self.written.insert(key, (action.clone(), crm_id.clone()));
        ActionResult::Applied { crm_id }
    }
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
            if matches!(from, PullFrom::Cursor(_)) && crm.refuse_cursors > 0 {
                crm.refuse_cursors -= 1;
                return Err(ConnectorError::CursorRefused {
                    connector: self.name.to_string(),
                    object: object.to_string(),
                    reason: "INVALID_QUERY_LOCATOR: invalid query locator".into(),
                });
            }
            if let Some(left @ 1..) = crm.unreadable.get_mut(&object) {
                *left -= 1;
                return Err(ConnectorError::Malformed {
                    connector: self.name.to_string(),
                    route: "/records".into(),
                    reason: "EOF while parsing an object at line 1 column 4096".into(),
                });
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
            let next = match &from {
                PullFrom::Cursor(asked) if crm.repeat_cursor.contains(&object) => {
                    Some(asked.clone())
                }
                _ => (end < selected.len())
                    .then(|| cursor(end, since.as_ref().map(|(at, id)| (*at, id)))),
            };
            let total = Some(crm.report_total.unwrap_or(selected.len() as u64));
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
                total,
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
            let outcomes: Vec<ActionOutcome> = actions
                .iter()
                .map(|action| ActionOutcome {
                    key: action.key().clone(),
                    result: crm.write(action),
                })
                .collect();
            match std::mem::take(&mut crm.next_answer) {
                Answer::Plain => Ok(outcomes),
                Answer::Lost => Err(ConnectorError::Transport {
                    connector: self.name.to_string(),
                    route: "/batch".into(),
                    reason: "connection reset".into(),
                }),
                Answer::Unreadable => Ok(outcomes
                    .into_iter()
                    .map(|outcome| ActionOutcome {
                        key: outcome.key,
                        result: ActionResult::Unknown {
                            reason: "the answer could not be read".into(),
                        },
                    })
                    .collect()),
            }
        })
    }

    fn recovery(&self) -> Recovery {
        self.with(|crm| {
            if crm.idempotent_creates {
                Recovery::Resend
            } else {
                Recovery::LookUp { settle: crm.settle }
            }
        })
    }

    async fn find_applied(
        &self,
        keys: &[ActionKey],
        since: DateTime<Utc>,
    ) -> Result<Vec<ActionOutcome>, ConnectorError> {
        self.with(|crm| {
            crm.lookups.push((keys.to_vec(), since));
            let now = tokio::time::Instant::now();
            Ok(keys
                .iter()
                .filter_map(|key| {
                    // The first task carrying the key, once the CRM shows it.
                    crm.tasks
                        .iter()
                        .find(|t| &t.key == key && t.created + crm.lag <= now)
                        .map(|task| ActionOutcome {
                            key: key.clone(),
                            result: ActionResult::Applied {
                                crm_id: task.id.clone(),
                            },
                        })
                })
                .collect())
        })
    }
}
