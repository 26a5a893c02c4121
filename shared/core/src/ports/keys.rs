//! The API keys' port (SPEC §8): keys stored hashed.

use async_trait::async_trait;
use jiff::Timestamp;

use super::StoreResult;

/// API keys, stored hashed (SPEC §8).
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Stores a key (its hash and prefix); `false` if that hash is already there (kept as is,
    /// revoked or not).
    async fn insert(&self, key: &ApiKey) -> StoreResult<bool>;
    /// The account of a key that is known and not revoked.
    async fn account_for(&self, key_hash: &str) -> StoreResult<Option<i64>>;
    /// Every key, revoked ones included, in no particular order.
    async fn list(&self) -> StoreResult<Vec<ApiKey>>;
    /// Revokes a key for good; `false` when it was unknown or revoked already.
    async fn revoke(&self, key_hash: &str, at: Timestamp) -> StoreResult<bool>;
}

/// An API key as stored: never the key itself, only its SHA-256 and a non-secret prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// SHA-256 of the key, hex.
    pub hash: String,
    /// `hk_` + 8 characters for generated keys (the first 8 characters of another key).
    pub prefix: String,
    /// The account the key belongs to.
    pub account: i64,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}
