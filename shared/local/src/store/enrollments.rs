//! Enrollments (with the one-entry-per-contact rule) and event answers.

use anyhow::Context;
use async_trait::async_trait;
use hookline_core::domain::event::IntakeAnswer;
use hookline_core::domain::time::{from_millis, to_millis};
use hookline_core::ports::{
    EnrollOutcome, Enrollment, EnrollmentState, EnrollmentStore, StoreResult,
};
use rusqlite::{OptionalExtension, Row, params};

use super::*;
use crate::db::{exec, row};

/// id, account, scenario, contact, seq, step, state, created (ms).
type EnrollmentRow = (String, i64, String, i64, i64, Option<String>, String, i64);

fn enrollment_row(row: &Row<'_>) -> rusqlite::Result<EnrollmentRow> {
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
