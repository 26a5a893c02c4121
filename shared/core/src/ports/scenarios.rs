//! The scenarios' port (SPEC §4): where they are kept, and the version a save expects.

use async_trait::async_trait;
use jiff::Timestamp;

use super::{Page, StoreResult};
use crate::domain::scenario::{ScenarioRecord, ScenarioStatus};

/// The version of a stored scenario a save expects (see [`ScenarioStore::update`]): its status
/// and its `updated_at`, in milliseconds, which every save moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    /// The status read.
    pub status: ScenarioStatus,
    /// The `updatedAt` read (every save moves it forward).
    pub updated_at: Timestamp,
}

impl Version {
    /// The version `scenario` was read at.
    pub fn of(scenario: &ScenarioRecord) -> Version {
        Version {
            status: scenario.status,
            updated_at: scenario.updated_at,
        }
    }
}

#[async_trait]
/// Scenarios, by account (SPEC §4).
pub trait ScenarioStore: Send + Sync {
    /// Stores a new scenario.
    async fn insert(&self, scenario: &ScenarioRecord) -> StoreResult<()>;
    /// One scenario of an account; `None` when unknown or another account's.
    async fn get(&self, account: i64, id: &str) -> StoreResult<Option<ScenarioRecord>>;
    /// Replaces the definition, status and secrets when the stored scenario is still the
    /// `expected` version — its status and `updated_at` as read (a compare-and-set); `false`
    /// when it was not: another save came between the read and this one.
    async fn update(&self, scenario: &ScenarioRecord, expected: Version) -> StoreResult<bool>;
    /// Newest first.
    async fn list(
        &self,
        account: i64,
        cursor: Option<&str>,
        limit: usize,
    ) -> StoreResult<Page<ScenarioRecord>>;
    /// The active scenarios of an account whose trigger has this type.
    async fn active_for_trigger(
        &self,
        account: i64,
        trigger_type: &str,
    ) -> StoreResult<Vec<ScenarioRecord>>;
    /// Every active scenario of an account, whatever its trigger, by id, in one read: what an
    /// intake (one event, or a batch of them) reads once for all its events.
    async fn active(&self, account: i64) -> StoreResult<Vec<ScenarioRecord>>;
    /// The active scenarios of an account whose trigger has any of these types, by id. A store
    /// may keep several types together (the time-based ones) and read them at once.
    async fn active_for_triggers(
        &self,
        account: i64,
        trigger_types: &[&str],
    ) -> StoreResult<Vec<ScenarioRecord>> {
        let mut all = Vec::new();
        for kind in trigger_types {
            all.extend(self.active_for_trigger(account, kind).await?);
        }
        all.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(all)
    }
}
