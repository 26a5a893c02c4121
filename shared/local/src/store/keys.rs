//! API keys: hashed, with a prefix to list and revoke them.

use async_trait::async_trait;
use hookline_core::domain::time::{from_millis, to_millis};
use hookline_core::ports::{ApiKey, KeyStore, StoreResult};
use jiff::Timestamp;
use rusqlite::{OptionalExtension, params};

use super::*;
use crate::db::{exec, row};

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
