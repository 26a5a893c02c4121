//! Contact snapshots, the latest per (account, contact id), applied in the order they occurred.

use async_trait::async_trait;
use hookline_core::domain::contact::Contact;
use hookline_core::domain::event::EventMemo;
use hookline_core::domain::time::to_millis;
use hookline_core::ports::{BadCursor, ContactStore, Page, SnapshotPut, StoreResult};
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};

use super::*;
use crate::db::{exec, row};

/// Stores a snapshot unless the stored one occurred later (one statement: the upsert's `WHERE`
/// keeps a later one); `true` when stored.
pub(crate) fn put_snapshot(
    c: &Connection,
    account: i64,
    id: i64,
    snapshot: &str,
    occurred_at: i64,
) -> rusqlite::Result<bool> {
    Ok(exec(c,
        "INSERT INTO contacts (account, id, snapshot, updated_at, occurred_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (account, id) DO UPDATE SET snapshot = excluded.snapshot, updated_at = excluded.updated_at,
             occurred_at = excluded.occurred_at
         WHERE contacts.occurred_at IS NULL OR contacts.occurred_at <= excluded.occurred_at",
        params![account, id, snapshot, now_ms(), occurred_at],
    )? == 1)
}

fn parse(text: &str, id: i64) -> anyhow::Result<Contact> {
    let value: serde_json::Value = serde_json::from_str(text)?;
    Contact::parse(value, "contact").map_err(|e| anyhow::anyhow!("stored contact {id}: {e}"))
}

#[async_trait]
impl ContactStore for SqliteStore {
    /// The snapshot and the event's memo in one transaction (the memo only with the snapshot);
    /// nothing when the slot holds this event's memo already.
    async fn put(
        &self,
        account: i64,
        contact: &Contact,
        occurred_at: Timestamp,
        memo: &EventMemo,
    ) -> StoreResult<SnapshotPut> {
        let snapshot = serde_json::to_string(&contact.snapshot)?;
        let (id, at) = (contact.id, to_millis(occurred_at));
        let (slot, text) = (memo.slot(), serde_json::to_string(memo)?);
        let event_id = memo.event_id.clone();
        let (outcome, previous) = self
            .db
            .call(move |c| {
                let previous: Option<String> = row(
                    c,
                    "SELECT snapshot FROM contacts WHERE account = ?1 AND id = ?2",
                    params![account, id],
                    |r| r.get(0),
                )
                .optional()?;
                let held: Option<String> = row(
                    c,
                    "SELECT memo FROM contact_memos WHERE account = ?1 AND contact_id = ?2 AND slot = ?3",
                    params![account, id, slot],
                    |r| r.get(0),
                )
                .optional()?;
                let seen = held.filter(|h| {
                    serde_json::from_str::<EventMemo>(h).is_ok_and(|m| m.event_id == event_id)
                });
                if let Some(seen) = seen {
                    return Ok((Err(seen), previous));
                }
                let stored = put_snapshot(c, account, id, &snapshot, at)?;
                if stored {
                    exec(
                        c,
                        "INSERT INTO contact_memos (account, contact_id, slot, memo) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (account, contact_id, slot) DO UPDATE SET memo = excluded.memo",
                        params![account, id, slot, text],
                    )?;
                }
                Ok((Ok(stored), previous))
            })
            .await?;
        let previous = previous.map(|text| parse(&text, id)).transpose()?;
        Ok(match outcome {
            Err(seen) => SnapshotPut::Seen {
                memo: serde_json::from_str(&seen)?,
                stored: previous,
            },
            Ok(true) => SnapshotPut::Applied { previous },
            Ok(false) => SnapshotPut::Older,
        })
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
        raw.map(|text| parse(&text, id)).transpose()
    }

    /// By contact id: the cursor is the last id of the page before.
    async fn page(
        &self,
        account: i64,
        cursor: Option<&str>,
        limit: usize,
    ) -> StoreResult<Page<Contact>> {
        let after = match cursor {
            None => i64::MIN,
            Some(c) => c.parse::<i64>().map_err(|_| BadCursor)?,
        };
        let limit = limit.max(1);
        let rows: Vec<(i64, String)> = self
            .db
            .read(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT id, snapshot FROM contacts WHERE account = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
                )?;
                let rows = stmt
                    .query_map(params![account, after, limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(rows)
            })
            .await?;
        let next_cursor = (rows.len() == limit).then(|| rows[rows.len() - 1].0.to_string());
        let mut items = Vec::with_capacity(rows.len());
        for (id, text) in &rows {
            match parse(text, *id) {
                Ok(contact) => items.push(contact),
                Err(e) => {
                    tracing::warn!(contact_id = id, error = %e, "an unreadable contact: skipped")
                }
            }
        }
        Ok(Page { items, next_cursor })
    }
}
