//! Contact snapshots, the latest per (account, contact id).

use async_trait::async_trait;
use hookline_core::domain::contact::Contact;
use hookline_core::ports::{ContactStore, StoreResult};
use rusqlite::{OptionalExtension, params};

use super::*;
use crate::db::{exec, row};

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
