//! The deliveries' port (SPEC §6, §7): passes, deliveries with their attempts, and the
//! statistics counters.

use async_trait::async_trait;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{Page, StoreResult};
use crate::domain::delivery::{Attempt, Delivery, DeliveryStatus};

/// One contact passing one step: the unit of the statistics. `key` makes it idempotent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pass {
    /// What makes the pass idempotent: the same key is recorded once.
    pub key: String,
    /// The account.
    pub account: i64,
    /// The scenario.
    pub scenario_id: String,
    /// The step passed.
    pub step_id: String,
    /// The contact that passed it.
    pub contact_id: i64,
    /// When.
    pub at: Timestamp,
    /// Known to be the contact's first pass of this step: its scenario takes a contact once
    /// (no re-entry) and has no cycle. A store then needs no unique-contact marker.
    pub first_for_contact: bool,
}

/// A step's counters (SPEC §7). For webhook steps `accepted + pending + failed == passes`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepCounts {
    /// The step.
    pub step_id: String,
    /// Passes of the step (a webhook step's passes are its deliveries).
    pub passes: u64,
    /// Distinct contacts that passed it.
    pub unique_contacts: u64,
    /// Deliveries accepted (webhook steps).
    pub accepted: u64,
    /// Deliveries still being tried (webhook steps).
    pub pending: u64,
    /// Deliveries failed for good (webhook steps).
    pub failed: u64,
}

/// Which deliveries of a webhook step to list.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryFilter<'a> {
    /// The account (another account's step lists nothing).
    pub account: i64,
    /// The scenario.
    pub scenario_id: &'a str,
    /// The webhook step.
    pub step_id: &'a str,
    /// Only deliveries with this status.
    pub status: Option<DeliveryStatus>,
    /// Only deliveries created at or after this time (resend-failed's `since`).
    pub since: Option<jiff::Timestamp>,
    /// Where the previous page ended.
    pub cursor: Option<&'a str>,
    /// Most items in the page.
    pub limit: usize,
}

/// Passes, deliveries with their attempts, and the statistics counters (SPEC §6, §7).
#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// Records a pass and, for a webhook step, its delivery as given (pending before its first
    /// attempt, or with that attempt and its outcome on the queued path), atomically; a pass
    /// whose key is already recorded changes nothing. `true` when recorded now.
    async fn record_pass(&self, pass: &Pass, delivery: Option<&Delivery>) -> StoreResult<bool>;
    /// A delivery recorded `accepted` with its first attempt may come back without its
    /// request (`url`, `headers`, `payload` empty): a store need not keep what nothing sends
    /// again.
    async fn get(&self, id: &str) -> StoreResult<Option<Delivery>>;
    /// Is this delivery stored? May miss one recorded within the last second or so (a store
    /// may read it eventually consistent, at half the price): for a copy of a message that
    /// comes long after the first (a redelivery), never for a compare-and-set.
    async fn is_recorded(&self, id: &str) -> StoreResult<bool> {
        Ok(self.get(id).await?.is_some())
    }
    /// Appends an attempt (`None`: the deadline passed before one could be made) and sets
    /// the status and next attempt time, when the stored delivery is still pending with as many
    /// attempts as `delivery` (as read) has — a compare-and-set; `false` otherwise. Statistics
    /// move with it, atomically.
    async fn record_attempt(
        &self,
        delivery: &Delivery,
        attempt: Option<&Attempt>,
        status: DeliveryStatus,
        next_attempt_at: Option<Timestamp>,
    ) -> StoreResult<bool>;
    /// Records the attempt of a resend (SPEC §7) when the stored delivery is still `failed`
    /// with as many attempts as `delivery` has (a compare-and-set); `false` otherwise. Accepted:
    /// the delivery becomes `accepted` and the statistics move `failed → accepted`, atomically;
    /// refused: it stays `failed`, with one attempt more.
    async fn record_resend(
        &self,
        delivery: &Delivery,
        attempt: &Attempt,
        accepted: bool,
    ) -> StoreResult<bool>;
    /// A webhook step's deliveries, newest first, possibly without their request (`url`,
    /// `headers`, `payload`: what a list never shows). A page may hold fewer than `limit`
    /// items and still have a next cursor (a store that filters what it reads).
    async fn list(&self, filter: &DeliveryFilter<'_>) -> StoreResult<Page<Delivery>>;
    /// Counters of every step of a scenario that has had at least one pass. They may lag the
    /// writes above (on AWS they are kept from the table's stream, about a second behind), but
    /// every reading satisfies `accepted + pending + failed == passes`, and once the writes have
    /// settled they count each pass and each move exactly once.
    async fn step_counts(&self, account: i64, scenario_id: &str) -> StoreResult<Vec<StepCounts>>;
}
