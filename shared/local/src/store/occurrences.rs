//! Pending occurrences of time-based triggers, one row each, indexed by when they fire.

use async_trait::async_trait;
use hookline_core::domain::time::{from_millis, to_millis};
use hookline_core::ports::{OccurrenceStore, Scheduled, StoreResult};
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

/// Reads `scenario_id, contact_id, date, account, at`.
pub(crate) fn read_occurrence(r: &rusqlite::Row<'_>) -> rusqlite::Result<Scheduled> {
    let date: String = r.get(2)?;
    let date = date.parse().map_err(|e: jiff::Error| {
        rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(Scheduled {
        scenario_id: r.get(0)?,
        contact_id: r.get(1)?,
        date,
        account: r.get(3)?,
        at: from_millis(r.get(4)?),
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
                        "DELETE FROM occurrences WHERE scenario_id = ?1 AND contact_id = ?2 AND date = ?3",
                        params![o.scenario_id, o.contact_id, o.date.to_string()],
                    )?;
                }
                Ok(())
            })
            .await
    }

    async fn in_minute(&self, minute: i64) -> StoreResult<Vec<Scheduled>> {
        let (from, to) = (minute * 60_000, (minute + 1) * 60_000);
        self.db
            .read(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT scenario_id, contact_id, date, account, at FROM occurrences WHERE at >= ?1 AND at < ?2",
                )?;
                let rows = stmt
                    .query_map(params![from, to], read_occurrence)?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(rows)
            })
            .await
    }

    async fn swept(&self) -> StoreResult<Option<i64>> {
        self.db
            .read(|c| {
                Ok(row(c, "SELECT minute FROM sweep WHERE id = 1", [], |r| r.get(0)).optional()?)
            })
            .await
    }

    async fn set_swept(&self, minute: i64) -> StoreResult<()> {
        self.db
            .call(move |c| {
                exec(
                    c,
                    "INSERT INTO sweep (id, minute) VALUES (1, ?1)
                     ON CONFLICT (id) DO UPDATE SET minute = max(minute, excluded.minute)",
                    params![minute],
                )?;
                Ok(())
            })
            .await
    }
}
