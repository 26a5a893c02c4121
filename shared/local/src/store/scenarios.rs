//! Scenarios: insert, read, compare-and-set updates, lists, the active ones of a trigger type.

use anyhow::Context;
use async_trait::async_trait;
use hookline_core::domain::scenario::{ScenarioDef, ScenarioRecord, ScenarioStatus};
use hookline_core::domain::time::{from_millis, to_millis};
use hookline_core::ports::{BadCursor, Page, ScenarioStore, StoreResult, Version};
use rusqlite::{OptionalExtension, Row, params};

use super::*;
use crate::db::{exec, row};

const SCENARIO_COLS: &str = "id, account, status, def, created_at, updated_at, secrets";

type RawScenario = (String, i64, String, String, i64, i64, String);

fn scenario_row(row: &Row<'_>) -> rusqlite::Result<RawScenario> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
    ))
}

fn scenario_from(raw: RawScenario) -> anyhow::Result<ScenarioRecord> {
    let (id, account, status, def, created, updated, secrets) = raw;
    Ok(ScenarioRecord {
        secrets: serde_json::from_str(&secrets)
            .with_context(|| format!("scenario {id}: secrets"))?,
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
        let secrets = serde_json::to_string(&s.secrets)?;
        let s = s.clone();
        self.db
            .call(move |c| {
                exec(c,
                    "INSERT INTO scenarios (id, account, status, trigger_type, def, created_at, updated_at, secrets)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![s.id, s.account, s.status.as_str(), s.def.trigger.kind, def, to_millis(s.created_at), to_millis(s.updated_at), secrets],
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

    async fn update(&self, s: &ScenarioRecord, version: Version) -> StoreResult<bool> {
        let expected = version.status;
        let was = to_millis(version.updated_at);
        let def = serde_json::to_string(&s.def)?;
        let secrets = serde_json::to_string(&s.secrets)?;
        let s = s.clone();
        self.db
            .call(move |c| {
                let n = exec(
                    c,
                    "UPDATE scenarios SET status = ?1, trigger_type = ?2, def = ?3, updated_at = ?4, secrets = ?8
                     WHERE id = ?5 AND account = ?6 AND status = ?7 AND updated_at = ?9",
                    params![
                        s.status.as_str(),
                        s.def.trigger.kind,
                        def,
                        to_millis(s.updated_at),
                        s.id,
                        s.account,
                        expected.as_str(),
                        secrets,
                        was
                    ],
                )?;
                if n == 1 && s.def.trigger.is_time_based() {
                    match s.status {
                        // every stored contact is considered, page by page (the workers)
                        ScenarioStatus::Active if expected == ScenarioStatus::Draft => {
                            exec(c,
                                "INSERT OR IGNORE INTO backfills (scenario_id, account, cursor) VALUES (?1, ?2, NULL)",
                                params![s.id, s.account],
                            )?;
                        }
                        // its future occurrences are cancelled (SPEC §3)
                        ScenarioStatus::Archived => {
                            exec(c, "DELETE FROM backfills WHERE scenario_id = ?1", params![s.id])?;
                            exec(c, "DELETE FROM occurrences WHERE scenario_id = ?1", params![s.id])?;
                        }
                        _ => {}
                    }
                }
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

    async fn active(&self, account: i64) -> StoreResult<Vec<ScenarioRecord>> {
        let rows = self
            .db
            .read(move |c| {
                let mut stmt = c.prepare_cached(&format!(
                    "SELECT {SCENARIO_COLS} FROM scenarios WHERE account = ?1 AND status = 'active' ORDER BY id"
                ))?;
                let rows = stmt.query_map(params![account], scenario_row)?.collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .await?;
        rows.into_iter().map(scenario_from).collect()
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
