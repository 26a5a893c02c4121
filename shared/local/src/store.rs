//! The store ports on SQLite. Each port method runs atomically (in a savepoint of the
//! database thread's batch, see [`Db`]), so every compare-and-set and every "record the pass
//! and its delivery together" is all or nothing.

use anyhow::Context;
use async_trait::async_trait;
use hookline_core::domain::contact::Contact;
use hookline_core::domain::delivery::{Attempt, Delivery, DeliveryStatus, Handoff};
use hookline_core::domain::event::IntakeAnswer;
use hookline_core::domain::scenario::{ScenarioDef, ScenarioRecord, ScenarioStatus};
use hookline_core::domain::time::{from_millis, to_millis};
use hookline_core::ports::{
    ApiKey, BadCursor, ContactStore, DeliveryFilter, DeliveryStore, EnrollOutcome, Enrollment,
    EnrollmentState, EnrollmentStore, KeyStore, Page, Pass, ScenarioStore, StepCounts, StoreResult,
};
use jiff::Timestamp;
use rusqlite::{OptionalExtension, Row, params};

use crate::Db;
use crate::db::{exec, row};

/// Every store port of the engine on one SQLite database.
#[derive(Clone)]
pub struct SqliteStore {
    db: Db,
}

impl SqliteStore {
    pub fn new(db: Db) -> Self {
        SqliteStore { db }
    }

    pub(crate) fn db(&self) -> &Db {
        &self.db
    }
}

pub(crate) fn now_ms() -> i64 {
    to_millis(Timestamp::now())
}

/// The one-entry-per-contact key of a scenario without re-entry.
pub(crate) fn entry_key(scenario_id: &str, contact_id: i64) -> String {
    format!("{scenario_id}:{contact_id}")
}

// ---------------------------------------------------------------- scenarios

const SCENARIO_COLS: &str = "id, account, status, def, created_at, updated_at";

fn scenario_row(row: &Row<'_>) -> rusqlite::Result<(String, i64, String, String, i64, i64)> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
    ))
}

fn scenario_from(raw: (String, i64, String, String, i64, i64)) -> anyhow::Result<ScenarioRecord> {
    let (id, account, status, def, created, updated) = raw;
    Ok(ScenarioRecord {
        status: ScenarioStatus::parse(&status)
            .with_context(|| format!("scenario {id}: status {status}"))?,
        def: serde_json::from_str::<ScenarioDef>(&def)
            .with_context(|| format!("scenario {id}: definition"))?,
        id,
        account,
        created_at: from_millis(created),
        updated_at: from_millis(updated),
    })
}

#[async_trait]
impl ScenarioStore for SqliteStore {
    async fn insert(&self, s: &ScenarioRecord) -> StoreResult<()> {
        let def = serde_json::to_string(&s.def)?;
        let s = s.clone();
        self.db
            .call(move |c| {
                exec(c,
                    "INSERT INTO scenarios (id, account, status, trigger_type, def, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![s.id, s.account, s.status.as_str(), s.def.trigger.kind, def, to_millis(s.created_at), to_millis(s.updated_at)],
                )?;
                Ok(())
            })
            .await
    }

    async fn get(&self, account: i64, id: &str) -> StoreResult<Option<ScenarioRecord>> {
        let id = id.to_string();
        let raw = self
            .db
            .read(move |c| {
                Ok(row(
                    c,
                    &format!(
                        "SELECT {SCENARIO_COLS} FROM scenarios WHERE account = ?1 AND id = ?2"
                    ),
                    params![account, id],
                    scenario_row,
                )
                .optional()?)
            })
            .await?;
        raw.map(scenario_from).transpose()
    }

    async fn update(&self, s: &ScenarioRecord, expected: ScenarioStatus) -> StoreResult<bool> {
        let def = serde_json::to_string(&s.def)?;
        let s = s.clone();
        self.db
            .call(move |c| {
                let n = exec(
                    c,
                    "UPDATE scenarios SET status = ?1, trigger_type = ?2, def = ?3, updated_at = ?4
                     WHERE id = ?5 AND account = ?6 AND status = ?7",
                    params![
                        s.status.as_str(),
                        s.def.trigger.kind,
                        def,
                        to_millis(s.updated_at),
                        s.id,
                        s.account,
                        expected.as_str()
                    ],
                )?;
                Ok(n == 1)
            })
            .await
    }

    async fn list(
        &self,
        account: i64,
        cursor: Option<&str>,
        limit: usize,
    ) -> StoreResult<Page<ScenarioRecord>> {
        if let Some(c) = cursor
            && !c.starts_with("scn_")
        {
            return Err(BadCursor.into());
        }
        let cursor = cursor.map(str::to_string);
        let rows = self
            .db
            .read(move |c| {
                let mut stmt = c.prepare_cached(&format!(
                    "SELECT {SCENARIO_COLS} FROM scenarios WHERE account = ?1 AND (?2 IS NULL OR id < ?2)
                     ORDER BY id DESC LIMIT ?3"
                ))?;
                let rows = stmt
                    .query_map(params![account, cursor, limit as i64 + 1], scenario_row)?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .await?;
        let mut items = rows
            .into_iter()
            .map(scenario_from)
            .collect::<anyhow::Result<Vec<_>>>()?;
        let next_cursor = (items.len() > limit).then(|| {
            items.truncate(limit);
            items.last().map(|s| s.id.clone()).unwrap_or_default()
        });
        Ok(Page { items, next_cursor })
    }

    async fn active_for_trigger(
        &self,
        account: i64,
        trigger_type: &str,
    ) -> StoreResult<Vec<ScenarioRecord>> {
        let trigger_type = trigger_type.to_string();
        let rows = self
            .db
            .read(move |c| {
                let mut stmt = c.prepare_cached(&format!(
                    "SELECT {SCENARIO_COLS} FROM scenarios WHERE account = ?1 AND status = 'active' AND trigger_type = ?2 ORDER BY id"
                ))?;
                let rows = stmt.query_map(params![account, trigger_type], scenario_row)?.collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .await?;
        rows.into_iter().map(scenario_from).collect()
    }
}

// ---------------------------------------------------------------- contacts

#[async_trait]
impl ContactStore for SqliteStore {
    async fn put(&self, account: i64, contact: &Contact) -> StoreResult<()> {
        let snapshot = serde_json::to_string(&contact.snapshot)?;
        let id = contact.id;
        self.db
            .call(move |c| {
                exec(c,
                    "INSERT INTO contacts (account, id, snapshot, updated_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (account, id) DO UPDATE SET snapshot = excluded.snapshot, updated_at = excluded.updated_at",
                    params![account, id, snapshot, now_ms()],
                )?;
                Ok(())
            })
            .await
    }

    async fn get(&self, account: i64, id: i64) -> StoreResult<Option<Contact>> {
        let raw: Option<String> = self
            .db
            .read(move |c| {
                Ok(row(
                    c,
                    "SELECT snapshot FROM contacts WHERE account = ?1 AND id = ?2",
                    params![account, id],
                    |r| r.get(0),
                )
                .optional()?)
            })
            .await?;
        raw.map(|text| {
            let value: serde_json::Value = serde_json::from_str(&text)?;
            Contact::parse(value, "contact")
                .map_err(|e| anyhow::anyhow!("stored contact {id}: {e}"))
        })
        .transpose()
    }
}

// ---------------------------------------------------------------- enrollments and events

fn enrollment_row(
    row: &Row<'_>,
) -> rusqlite::Result<(String, i64, String, i64, i64, Option<String>, String, i64)> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
    ))
}

#[async_trait]
impl EnrollmentStore for SqliteStore {
    async fn event_answer(
        &self,
        account: i64,
        event_id: &str,
    ) -> StoreResult<Option<IntakeAnswer>> {
        let event_id = event_id.to_string();
        let raw: Option<String> = self
            .db
            .read(move |c| {
                Ok(row(
                    c,
                    "SELECT answer FROM events WHERE account = ?1 AND event_id = ?2",
                    params![account, event_id],
                    |r| r.get(0),
                )
                .optional()?)
            })
            .await?;
        Ok(raw.map(|t| serde_json::from_str(&t)).transpose()?)
    }

    async fn save_event_answer(
        &self,
        account: i64,
        answer: &IntakeAnswer,
    ) -> StoreResult<IntakeAnswer> {
        let text = serde_json::to_string(answer)?;
        let event_id = answer.event_id.clone();
        let stored: String = self
            .db
            .call(move |c| {
                exec(c,
                    "INSERT INTO events (account, event_id, answer, created_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT DO NOTHING",
                    params![account, event_id, text, now_ms()],
                )?;
                let stored = row(c,
                    "SELECT answer FROM events WHERE account = ?1 AND event_id = ?2",
                    params![account, event_id],
                    |r| r.get(0),
                )?;
                Ok(stored)
            })
            .await?;
        Ok(serde_json::from_str(&stored)?)
    }

    async fn create(&self, e: &Enrollment, allow_reentry: bool) -> StoreResult<EnrollOutcome> {
        let e = e.clone();
        self.db
            .call(move |c| {
                let exists: bool = row(c, "SELECT 1 FROM enrollments WHERE id = ?1", params![e.id], |_| Ok(()))
                    .optional()?
                    .is_some();
                if exists {
                    return Ok(EnrollOutcome::AlreadyExists);
                }
                let entry_key = (!allow_reentry).then(|| entry_key(&e.scenario_id, e.contact_id));
                let created = exec(c,
                    "INSERT INTO enrollments (id, account, scenario_id, contact_id, seq, step_id, state, created_at, updated_at, entry_key)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9) ON CONFLICT DO NOTHING",
                    params![e.id, e.account, e.scenario_id, e.contact_id, e.seq as i64, e.step_id, e.state.as_str(), to_millis(e.created_at), entry_key],
                )?;
                if created == 0 {
                    return Ok(EnrollOutcome::AlreadyEntered);
                }
                Ok(EnrollOutcome::Created)
            })
            .await
    }

    async fn get(&self, id: &str) -> StoreResult<Option<Enrollment>> {
        let id = id.to_string();
        let raw = self
            .db
            .read(move |c| {
                Ok(row(c,
                    "SELECT id, account, scenario_id, contact_id, seq, step_id, state, created_at FROM enrollments WHERE id = ?1",
                    params![id],
                    enrollment_row,
                )
                .optional()?)
            })
            .await?;
        raw.map(
            |(id, account, scenario_id, contact_id, seq, step_id, state, created)| {
                Ok(Enrollment {
                    state: EnrollmentState::parse(&state)
                        .with_context(|| format!("enrollment {id}: state {state}"))?,
                    id,
                    account,
                    scenario_id,
                    contact_id,
                    seq: seq as u64,
                    step_id,
                    created_at: from_millis(created),
                })
            },
        )
        .transpose()
    }

    async fn advance(
        &self,
        id: &str,
        from_seq: u64,
        step_id: Option<&str>,
        state: EnrollmentState,
    ) -> StoreResult<bool> {
        let (id, step_id) = (id.to_string(), step_id.map(str::to_string));
        self.db
            .call(move |c| {
                let n = exec(c,
                    "UPDATE enrollments SET seq = ?1, step_id = ?2, state = ?3, updated_at = ?4 WHERE id = ?5 AND seq = ?6",
                    params![from_seq as i64 + 1, step_id, state.as_str(), now_ms(), id, from_seq as i64],
                )?;
                Ok(n == 1)
            })
            .await
    }
}

// ---------------------------------------------------------------- deliveries and statistics

/// `true` when inserted now (`false`: that pass was recorded before).
pub(crate) fn insert_pass(c: &rusqlite::Connection, p: &Pass) -> rusqlite::Result<bool> {
    Ok(exec(c,
        "INSERT INTO passes (key, account, scenario_id, step_id, contact_id, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT DO NOTHING",
        params![p.key, p.account, p.scenario_id, p.step_id, p.contact_id, to_millis(p.at)],
    )? == 1)
}

/// `true` when inserted now (`false`: that delivery exists). The JSON columns come serialized.
pub(crate) fn insert_delivery(
    c: &rusqlite::Connection,
    d: &Delivery,
    handoff: &str,
    headers: &str,
    attempts: &str,
) -> rusqlite::Result<bool> {
    Ok(exec(c,
        &format!("INSERT INTO deliveries ({DELIVERY_COLS}, attempt_count) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
                  ON CONFLICT DO NOTHING"),
        params![
            d.id, d.account, d.scenario_id, d.step_id, d.contact_id, handoff, d.url, headers, d.payload,
            d.status.as_str(), to_millis(d.created_at), to_millis(d.deadline), d.next_attempt_at.map(to_millis),
            attempts, d.attempts.len() as i64
        ],
    )? == 1)
}

const DELIVERY_COLS: &str =
    "id, account, scenario_id, step_id, contact_id, handoff, url, headers, payload, status,
    created_at, deadline, next_attempt_at, attempts";

type DeliveryRow = (
    String,
    i64,
    String,
    String,
    i64,
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    String,
);

fn delivery_row(r: &Row<'_>) -> rusqlite::Result<DeliveryRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
        r.get(11)?,
        r.get(12)?,
        r.get(13)?,
    ))
}

fn delivery_from(raw: DeliveryRow) -> anyhow::Result<Delivery> {
    let (
        id,
        account,
        scenario_id,
        step_id,
        contact_id,
        handoff,
        url,
        headers,
        payload,
        status,
        created,
        deadline,
        next,
        attempts,
    ) = raw;
    Ok(Delivery {
        handoff: serde_json::from_str::<Handoff>(&handoff)?,
        headers: serde_json::from_str(&headers)?,
        status: DeliveryStatus::parse(&status)
            .with_context(|| format!("delivery {id}: status {status}"))?,
        attempts: serde_json::from_str::<Vec<Attempt>>(&attempts)?,
        id,
        account,
        scenario_id,
        step_id,
        contact_id,
        url,
        payload,
        created_at: from_millis(created),
        deadline: from_millis(deadline),
        next_attempt_at: next.map(from_millis),
    })
}

#[async_trait]
impl DeliveryStore for SqliteStore {
    async fn record_pass(&self, pass: &Pass, delivery: Option<&Delivery>) -> StoreResult<bool> {
        let pass = pass.clone();
        let delivery = match delivery {
            Some(d) => Some((
                d.clone(),
                serde_json::to_string(&d.handoff)?,
                serde_json::to_string(&d.headers)?,
                serde_json::to_string(&d.attempts)?,
            )),
            None => None,
        };
        self.db
            .call(move |c| {
                // a webhook step's pass is its delivery (its id derives from the pass key)
                let new = match &delivery {
                    Some((d, handoff, headers, attempts)) => {
                        insert_delivery(c, d, handoff, headers, attempts)?
                    }
                    None => insert_pass(c, &pass)?,
                };
                Ok(new)
            })
            .await
    }

    async fn get(&self, id: &str) -> StoreResult<Option<Delivery>> {
        let id = id.to_string();
        let raw = self
            .db
            .read(move |c| {
                Ok(row(
                    c,
                    &format!("SELECT {DELIVERY_COLS} FROM deliveries WHERE id = ?1"),
                    params![id],
                    delivery_row,
                )
                .optional()?)
            })
            .await?;
        raw.map(delivery_from).transpose()
    }

    async fn record_attempt(
        &self,
        delivery: &Delivery,
        attempt: Option<&Attempt>,
        status: DeliveryStatus,
        next_attempt_at: Option<Timestamp>,
    ) -> StoreResult<bool> {
        let id = delivery.id.clone();
        let attempts_before = delivery.attempts.len();
        let attempt = attempt.map(serde_json::to_value).transpose()?;
        self.db
            .call(move |c| {
                let current: Option<String> = row(
                    c,
                    "SELECT attempts FROM deliveries WHERE id = ?1 AND status = 'pending' AND attempt_count = ?2",
                    params![id, attempts_before as i64],
                    |r| r.get(0),
                )
                .optional()?;
                let Some(current) = current else {
                    return Ok(false);
                };
                let mut attempts: Vec<serde_json::Value> = serde_json::from_str(&current)?;
                attempts.extend(attempt);
                exec(
                    c,
                    "UPDATE deliveries SET attempts = ?1, attempt_count = ?2, status = ?3, next_attempt_at = ?4 WHERE id = ?5",
                    params![serde_json::to_string(&attempts)?, attempts.len() as i64, status.as_str(), next_attempt_at.map(to_millis), id],
                )?;
                Ok(true)
            })
            .await
    }

    async fn list(&self, f: &DeliveryFilter<'_>) -> StoreResult<Page<Delivery>> {
        // cursor: "<created ms>.<id>" of the last item of the previous page
        let cursor = match f.cursor {
            None => None,
            Some(text) => {
                let (ms, id) = text.split_once('.').ok_or(BadCursor)?;
                Some((ms.parse::<i64>().map_err(|_| BadCursor)?, id.to_string()))
            }
        };
        let (account, scenario, step) =
            (f.account, f.scenario_id.to_string(), f.step_id.to_string());
        let status = f.status.map(|s| s.as_str());
        let limit = f.limit;
        let rows = self
            .db
            .read(move |c| {
                let (c_ms, c_id) = cursor.unzip();
                let mut stmt = c.prepare_cached(&format!(
                    "SELECT {DELIVERY_COLS} FROM deliveries
                     WHERE scenario_id = ?1 AND step_id = ?2 AND account = ?3 AND (?4 IS NULL OR status = ?4)
                       AND (?5 IS NULL OR created_at < ?5 OR (created_at = ?5 AND id < ?6))
                     ORDER BY created_at DESC, id DESC LIMIT ?7"
                ))?;
                let rows = stmt
                    .query_map(params![scenario, step, account, status, c_ms, c_id, limit as i64 + 1], delivery_row)?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .await?;
        let mut items = rows
            .into_iter()
            .map(delivery_from)
            .collect::<anyhow::Result<Vec<_>>>()?;
        let next_cursor = (items.len() > limit).then(|| {
            items.truncate(limit);
            items
                .last()
                .map(|d| format!("{}.{}", to_millis(d.created_at), d.id))
                .unwrap_or_default()
        });
        Ok(Page { items, next_cursor })
    }

    async fn step_counts(&self, account: i64, scenario_id: &str) -> StoreResult<Vec<StepCounts>> {
        let scenario_id = scenario_id.to_string();
        self.db
            .read(move |c| {
                // one read transaction: passes and delivery statuses from the same moment
                let mut counts: Vec<StepCounts> = Vec::new();
                {
                    let mut stmt = c.prepare_cached(
                        "SELECT step_id, COUNT(*), COUNT(DISTINCT contact_id) FROM passes
                         WHERE scenario_id = ?1 AND account = ?2 GROUP BY step_id",
                    )?;
                    let rows = stmt.query_map(params![scenario_id, account], |r| {
                        Ok(StepCounts {
                            step_id: r.get(0)?,
                            passes: r.get::<_, i64>(1)? as u64,
                            unique_contacts: r.get::<_, i64>(2)? as u64,
                            ..StepCounts::default()
                        })
                    })?;
                    for row in rows {
                        counts.push(row?);
                    }
                    let mut stmt = c.prepare_cached(
                        "SELECT step_id, COUNT(*), COUNT(DISTINCT contact_id) FROM deliveries
                         WHERE scenario_id = ?1 AND account = ?2 GROUP BY step_id",
                    )?;
                    let rows = stmt.query_map(params![scenario_id, account], |r| {
                        Ok(StepCounts {
                            step_id: r.get(0)?,
                            passes: r.get::<_, i64>(1)? as u64,
                            unique_contacts: r.get::<_, i64>(2)? as u64,
                            ..StepCounts::default()
                        })
                    })?;
                    for row in rows {
                        counts.push(row?);
                    }
                    let mut stmt = c.prepare_cached(
                        "SELECT step_id, status, COUNT(*) FROM deliveries WHERE scenario_id = ?1 AND account = ?2 GROUP BY step_id, status",
                    )?;
                    let rows = stmt.query_map(params![scenario_id, account], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)? as u64))
                    })?;
                    for row in rows {
                        let (step, status, n) = row?;
                        if let Some(c) = counts.iter_mut().find(|c| c.step_id == step) {
                            match status.as_str() {
                                "accepted" => c.accepted = n,
                                "failed" => c.failed = n,
                                _ => c.pending = n,
                            }
                        }
                    }
                }
                Ok(counts)
            })
            .await
    }
}

// ---------------------------------------------------------------- API keys

#[async_trait]
impl KeyStore for SqliteStore {
    async fn insert(&self, key: &ApiKey) -> StoreResult<bool> {
        let k = key.clone();
        self.db
            .call(move |c| {
                let n = exec(c,
                    "INSERT INTO api_keys (key_hash, account, created_at, prefix, revoked_at) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT DO NOTHING",
                    params![k.hash, k.account, to_millis(k.created_at), k.prefix, k.revoked_at.map(to_millis)],
                )?;
                Ok(n == 1)
            })
            .await
    }

    async fn account_for(&self, key_hash: &str) -> StoreResult<Option<i64>> {
        let key_hash = key_hash.to_string();
        self.db
            .read(move |c| {
                Ok(row(
                    c,
                    "SELECT account FROM api_keys WHERE key_hash = ?1 AND revoked_at IS NULL",
                    params![key_hash],
                    |r| r.get(0),
                )
                .optional()?)
            })
            .await
    }

    async fn list(&self) -> StoreResult<Vec<ApiKey>> {
        self.db
            .read(|c| {
                let mut stmt = c.prepare_cached(
                    "SELECT key_hash, COALESCE(prefix, ''), account, created_at, revoked_at FROM api_keys",
                )?;
                let keys = stmt
                    .query_map([], |r| {
                        Ok(ApiKey {
                            hash: r.get(0)?,
                            prefix: r.get(1)?,
                            account: r.get(2)?,
                            created_at: from_millis(r.get(3)?),
                            revoked_at: r.get::<_, Option<i64>>(4)?.map(from_millis),
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(keys)
            })
            .await
    }

    async fn revoke(&self, key_hash: &str, at: Timestamp) -> StoreResult<bool> {
        let key_hash = key_hash.to_string();
        self.db
            .call(move |c| {
                Ok(exec(
                    c,
                    "UPDATE api_keys SET revoked_at = ?1 WHERE key_hash = ?2 AND revoked_at IS NULL",
                    params![to_millis(at), key_hash],
                )? == 1)
            })
            .await
    }
}
