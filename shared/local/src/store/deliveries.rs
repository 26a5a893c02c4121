//! Passes, deliveries and their attempts, and the statistics read from them.

use anyhow::Context;
use async_trait::async_trait;
use hookline_core::domain::delivery::{Attempt, Delivery, DeliveryStatus, Handoff};
use hookline_core::domain::time::{from_millis, to_millis};
use hookline_core::ports::{
    BadCursor, DeliveryFilter, DeliveryStore, Page, Pass, StepCounts, StoreResult,
};
use jiff::Timestamp;
use rusqlite::{OptionalExtension, Row, params};

use super::*;
use crate::db::{exec, row};

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
        &format!("INSERT INTO deliveries ({DELIVERY_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
                  ON CONFLICT DO NOTHING"),
        params![
            d.id, d.account, d.scenario_id, d.step_id, d.contact_id, handoff, d.url, headers, d.payload,
            d.status.as_str(), to_millis(d.created_at), to_millis(d.deadline), d.next_attempt_at.map(to_millis),
            attempts, d.attempt_count
        ],
    )? == 1)
}

const DELIVERY_COLS: &str =
    "id, account, scenario_id, step_id, contact_id, handoff, url, headers, payload, status,
    created_at, deadline, next_attempt_at, attempts, attempt_count";

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
    u32,
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
        r.get(14)?,
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
        attempt_count,
    ) = raw;
    Ok(Delivery {
        handoff: serde_json::from_str::<Handoff>(&handoff)?,
        headers: serde_json::from_str(&headers)?,
        status: DeliveryStatus::parse(&status)
            .with_context(|| format!("delivery {id}: status {status}"))?,
        attempts: serde_json::from_str::<Vec<Attempt>>(&attempts)?,
        attempt_count,
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

/// A `(step_id, passes, unique contacts)` row as a step's counters.
fn pass_counts(r: &Row<'_>) -> rusqlite::Result<StepCounts> {
    Ok(StepCounts {
        step_id: r.get(0)?,
        passes: r.get::<_, i64>(1)? as u64,
        unique_contacts: r.get::<_, i64>(2)? as u64,
        ..StepCounts::default()
    })
}

impl SqliteStore {
    /// A compare-and-set: the delivery's attempts, count, status and next attempt time, when the
    /// stored one is still `from` after as many attempts as `delivery` (as read) has.
    async fn move_delivery(
        &self,
        delivery: &Delivery,
        from: DeliveryStatus,
        attempts: &[Attempt],
        count: u32,
        status: DeliveryStatus,
        next_attempt_at: Option<Timestamp>,
    ) -> StoreResult<bool> {
        let (id, before) = (delivery.id.clone(), delivery.attempt_count);
        let attempts = serde_json::to_string(attempts)?;
        self.db
            .call(move |c| {
                Ok(update_delivery(
                    c,
                    &id,
                    from,
                    before,
                    &attempts,
                    count,
                    status,
                    next_attempt_at,
                )?)
            })
            .await
    }
}

/// The compare-and-set behind every attempt: the delivery's attempts (JSON), count, status and
/// next attempt time, when it is still `from` after `before` attempts. `true` when made.
#[allow(clippy::too_many_arguments)]
pub(crate) fn update_delivery(
    c: &rusqlite::Connection,
    id: &str,
    from: DeliveryStatus,
    before: u32,
    attempts_json: &str,
    count: u32,
    status: DeliveryStatus,
    next_attempt_at: Option<Timestamp>,
) -> rusqlite::Result<bool> {
    Ok(exec(
        c,
        "UPDATE deliveries SET attempts = ?1, attempt_count = ?2, status = ?3, next_attempt_at = ?4
         WHERE id = ?5 AND status = ?6 AND attempt_count = ?7",
        params![
            attempts_json,
            count,
            status.as_str(),
            next_attempt_at.map(to_millis),
            id,
            from.as_str(),
            before
        ],
    )? == 1)
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
        let (attempts, count) = match attempt {
            Some(a) => (delivery.kept_with(a), delivery.attempt_count + 1),
            None => (delivery.attempts.clone(), delivery.attempt_count),
        };
        self.move_delivery(
            delivery,
            DeliveryStatus::Pending,
            &attempts,
            count,
            status,
            next_attempt_at,
        )
        .await
    }

    /// Statistics are counted from the rows: the status is the move `failed → accepted`.
    async fn record_resend(
        &self,
        delivery: &Delivery,
        attempt: &Attempt,
        accepted: bool,
    ) -> StoreResult<bool> {
        let status = if accepted {
            DeliveryStatus::Accepted
        } else {
            DeliveryStatus::Failed
        };
        let attempts = delivery.kept_with(attempt);
        let count = delivery.attempt_count + 1;
        self.move_delivery(
            delivery,
            DeliveryStatus::Failed,
            &attempts,
            count,
            status,
            None,
        )
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
        let since = f.since.map(to_millis);
        let limit = f.limit;
        let rows = self
            .db
            .read(move |c| {
                let (c_ms, c_id) = cursor.unzip();
                let mut stmt = c.prepare_cached(&format!(
                    "SELECT {DELIVERY_COLS} FROM deliveries
                     WHERE scenario_id = ?1 AND step_id = ?2 AND account = ?3 AND (?4 IS NULL OR status = ?4)
                       AND (?5 IS NULL OR created_at < ?5 OR (created_at = ?5 AND id < ?6))
                       AND (?8 IS NULL OR created_at >= ?8)
                     ORDER BY created_at DESC, id DESC LIMIT ?7"
                ))?;
                let rows = stmt
                    .query_map(params![scenario, step, account, status, c_ms, c_id, limit as i64 + 1, since], delivery_row)?
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
                    let rows = stmt.query_map(params![scenario_id, account], pass_counts)?;
                    for row in rows {
                        counts.push(row?);
                    }
                    let mut stmt = c.prepare_cached(
                        "SELECT step_id, COUNT(*), COUNT(DISTINCT contact_id) FROM deliveries
                         WHERE scenario_id = ?1 AND account = ?2 GROUP BY step_id",
                    )?;
                    let rows = stmt.query_map(params![scenario_id, account], pass_counts)?;
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
