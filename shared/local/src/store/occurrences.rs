//! Pending occurrences of time-based triggers, one row each, indexed by when they fire.

use async_trait::async_trait;
use hookline_core::domain::time::{from_millis, to_millis};
use hookline_core::ports::{
    BadCursor, OccurrenceStore, Page, Scheduled, StoreResult, SweepState, minute_of,
};
use rusqlite::{Connection, OptionalExtension, params};

use super::*;
use crate::db::{exec, row};

pub(crate) fn insert_occurrence(c: &Connection, o: &Scheduled) -> rusqlite::Result<()> {
    exec(c,
        "INSERT INTO occurrences (scenario_id, contact_id, date, account, at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (scenario_id, contact_id, date) DO UPDATE SET at = excluded.at",
        params![o.scenario_id, o.contact_id, o.date.to_string(), o.account, to_millis(o.at)],
    )?;
    Ok(())
}

/// Reads `scenario_id, contact_id, date, account, at`; `Err` (text) for a row whose date does
/// not parse (its caller logs and skips it).
pub(crate) fn read_occurrence(r: &rusqlite::Row<'_>) -> Result<Scheduled, String> {
    let get = || -> rusqlite::Result<(String, i64, String, i64, i64)> {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    };
    let (scenario_id, contact_id, date, account, at) = get().map_err(|e| e.to_string())?;
    let date = date
        .parse()
        .map_err(|e: jiff::Error| format!("occurrence date `{date}`: {e}"))?;
    Ok(Scheduled {
        scenario_id,
        contact_id,
        date,
        account,
        at: from_millis(at),
    })
}

#[async_trait]
impl OccurrenceStore for SqliteStore {
    async fn schedule(&self, items: &[Scheduled]) -> StoreResult<()> {
        let items = items.to_vec();
        self.db
            .call(move |c| {
                for o in &items {
                    insert_occurrence(c, o)?;
                }
                Ok(())
            })
            .await
    }

    async fn cancel(&self, items: &[Scheduled]) -> StoreResult<()> {
        let items = items.to_vec();
        self.db
            .call(move |c| {
                for o in &items {
                    exec(c,
                        "DELETE FROM occurrences WHERE scenario_id = ?1 AND contact_id = ?2 AND date = ?3
                         AND at >= ?4 AND at < ?4 + 60000",
                        params![o.scenario_id, o.contact_id, o.date.to_string(), minute_of(o.at) * 60_000],
                    )?;
                }
                Ok(())
            })
            .await
    }

    /// Pages by (scenario, contact, date) within the minute; the cursor is the last of a page.
    async fn in_minute(
        &self,
        minute: i64,
        cursor: Option<&str>,
        limit: usize,
    ) -> StoreResult<Page<Scheduled>> {
        let (from, to) = (minute * 60_000, (minute + 1) * 60_000);
        let after: (String, i64, String) = match cursor {
            None => (String::new(), i64::MIN, String::new()),
            Some(c) => serde_json::from_str(c).map_err(|_| BadCursor)?,
        };
        let limit = limit.max(1);
        let rows = self
            .db
            .read(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT scenario_id, contact_id, date, account, at FROM occurrences
                     WHERE at >= ?1 AND at < ?2 AND (scenario_id, contact_id, date) > (?3, ?4, ?5)
                     ORDER BY scenario_id, contact_id, date LIMIT ?6",
                )?;
                let rows = stmt
                    .query_map(
                        params![from, to, after.0, after.1, after.2, limit as i64],
                        |r| {
                            Ok((
                                (
                                    r.get::<_, String>(0)?,
                                    r.get::<_, i64>(1)?,
                                    r.get::<_, String>(2)?,
                                ),
                                read_occurrence(r),
                            ))
                        },
                    )?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(rows)
            })
            .await?;
        let next_cursor = match rows.last() {
            Some((key, _)) if rows.len() == limit => Some(serde_json::to_string(key)?),
            _ => None,
        };
        let mut items = Vec::with_capacity(rows.len());
        for (key, occurrence) in rows {
            match occurrence {
                Ok(o) => items.push(o),
                Err(e) => tracing::warn!(?key, error = %e, "an unreadable occurrence row: skipped"),
            }
        }
        Ok(Page { items, next_cursor })
    }

    async fn swept(&self) -> StoreResult<Option<SweepState>> {
        self.db
            .read(|c| {
                Ok(row(
                    c,
                    "SELECT minute, cursor FROM sweep WHERE id = 1",
                    [],
                    |r| {
                        Ok(SweepState {
                            minute: r.get(0)?,
                            cursor: r.get(1)?,
                        })
                    },
                )
                .optional()?)
            })
            .await
    }

    async fn set_swept(&self, state: &SweepState) -> StoreResult<()> {
        let (minute, cursor) = (state.minute, state.cursor.clone());
        self.db
            .call(move |c| {
                exec(c,
                    "INSERT INTO sweep (id, minute, cursor) VALUES (1, ?1, ?2)
                     ON CONFLICT (id) DO UPDATE SET minute = excluded.minute, cursor = excluded.cursor
                     WHERE excluded.minute >= sweep.minute",
                    params![minute, cursor],
                )?;
                Ok(())
            })
            .await
    }
}
