//! The ports the use cases need. Adapters: `hookline-local` (SQLite), `hookline-aws`
//! (DynamoDB, SQS, EventBridge Scheduler), `hookline-sender` (reqwest).
//! Each port has one contract suite in `crate::contract` (feature `testkit`), run against every
//! adapter.

use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::domain::contact::Contact;
use crate::domain::delivery::{Attempt, AttemptOutcome, Delivery, DeliveryStatus};
use crate::domain::event::{EventMemo, IntakeAnswer};
use crate::domain::scenario::{ScenarioRecord, ScenarioStatus};

mod destinations;
mod flow;
mod occurrences;
pub use destinations::*;
pub use flow::*;
pub use occurrences::*;

/// A store or queue failure: something that may pass (retried), never the caller's fault.
pub type StoreResult<T> = Result<T, anyhow::Error>;

/// The current time, injected so tests can pin it (the 12-hour window tested in seconds).
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// The wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that starts at a chosen instant and then runs at the real speed (tests and demos
/// of time-based triggers, through `hookline serve --clock-start`).
pub struct ShiftedClock {
    start: Timestamp,
    since: std::time::Instant,
}

impl ShiftedClock {
    /// A clock that reads `start` now and runs on from there.
    pub fn starting_at(start: Timestamp) -> Self {
        ShiftedClock {
            start,
            since: std::time::Instant::now(),
        }
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> Timestamp {
        let elapsed = jiff::SignedDuration::try_from(self.since.elapsed()).unwrap_or_default();
        self.start.checked_add(elapsed).unwrap_or(self.start)
    }
}

/// New ids and randomness (jitter), injected so tests can pin them.
pub trait Ids: Send + Sync {
    /// A new sortable id with this prefix: `evt_01JD…`.
    fn new_id(&self, prefix: &str) -> String;
    /// A number in `[0, 1)`.
    fn random_unit(&self) -> f64;
}

/// One page of a list, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The page's items.
    pub items: Vec<T>,
    /// The cursor of the next page; `None` on the last one.
    pub next_cursor: Option<String>,
}

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

/// What [`ContactStore::put`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum SnapshotPut {
    /// Stored, with the event's memo; the snapshot it replaced, if any.
    Applied {
        /// The snapshot it replaced, if any.
        previous: Option<Contact>,
    },
    /// This event was stored before and its memo is still kept: nothing was written (a repeat
    /// never replaces a later snapshot, nor its own memo); the memo and the stored snapshot.
    Seen {
        /// The memo stored with the first send of this event.
        memo: EventMemo,
        /// The snapshot stored now.
        stored: Option<Contact>,
    },
    /// A snapshot that occurred later is stored: this older one was not (SPEC §3), nor its
    /// memo.
    Older,
}

/// Contact snapshots, the latest per (account, contact id), with the memos of their last events.
#[async_trait]
pub trait ContactStore: Send + Sync {
    /// Replaces the stored snapshot of (account, contact id) unless the stored one occurred
    /// after `occurred_at` (snapshots apply in the order they occurred; a tie replaces), and
    /// with it records the event's memo in its [`EventMemo::slot`] (one write) — unless that
    /// slot holds this event's memo already: then nothing is written and the memo comes back
    /// ([`SnapshotPut::Seen`]). Memos are kept with the snapshot, at most
    /// [`crate::domain::event::MEMO_SLOTS`] per contact.
    async fn put(
        &self,
        account: i64,
        contact: &Contact,
        occurred_at: Timestamp,
        memo: &EventMemo,
    ) -> StoreResult<SnapshotPut>;
    /// The stored snapshot of a contact.
    async fn get(&self, account: i64, id: i64) -> StoreResult<Option<Contact>>;
    /// One page of an account's contacts, in no particular order; a page may be empty while
    /// `next_cursor` says there is more (every contact is in exactly one page). A stored
    /// snapshot that cannot be read is logged and skipped.
    async fn page(
        &self,
        account: i64,
        cursor: Option<&str>,
        limit: usize,
    ) -> StoreResult<Page<Contact>>;
}

/// Where an enrollment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnrollmentState {
    /// Moving through steps (or waiting for a queued advance).
    Active,
    /// At a wait step, until its time (inline path).
    Waiting,
    /// Waiting for the first attempt of a delivery.
    AwaitingDelivery,
    /// Went through to the end.
    Completed,
    /// The scenario was archived while the contact was inside.
    Stopped,
}

impl EnrollmentState {
    /// The state as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            EnrollmentState::Active => "active",
            EnrollmentState::Waiting => "waiting",
            EnrollmentState::AwaitingDelivery => "awaiting_delivery",
            EnrollmentState::Completed => "completed",
            EnrollmentState::Stopped => "stopped",
        }
    }

    /// The state stored as `s`, if it is one.
    pub fn parse(s: &str) -> Option<EnrollmentState> {
        [
            Self::Active,
            Self::Waiting,
            Self::AwaitingDelivery,
            Self::Completed,
            Self::Stopped,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }

    /// Completed or stopped: the enrollment moves no more.
    pub fn is_final(self) -> bool {
        matches!(self, EnrollmentState::Completed | EnrollmentState::Stopped)
    }
}

/// One contact's pass through one scenario. `seq` counts its moves: every handler that moves
/// it does so with a compare-and-set on `seq`, so a repeated message moves it once.
#[derive(Debug, Clone, PartialEq)]
pub struct Enrollment {
    /// The enrollment id (`enr_…`, or derived from the entry when re-entry is not allowed).
    pub id: String,
    /// The account.
    pub account: i64,
    /// The scenario the contact is in.
    pub scenario_id: String,
    /// The contact.
    pub contact_id: i64,
    /// How many times it has moved (the compare-and-set of every move).
    pub seq: u64,
    /// The step it is at; `None` at the end.
    pub step_id: Option<String>,
    /// Where it stands.
    pub state: EnrollmentState,
    /// When the contact entered the scenario.
    pub created_at: Timestamp,
}

/// What [`EnrollmentStore::create`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrollOutcome {
    /// Created now.
    Created,
    /// This very enrollment (same id) exists: a repeated intake.
    AlreadyExists,
    /// The contact already entered this scenario and re-entry is not allowed.
    AlreadyEntered,
}

/// Enrollments (with the one-entry-per-contact rule) and event answers.
#[async_trait]
pub trait EnrollmentStore: Send + Sync {
    /// The stored answer to an event id, if it was answered.
    async fn event_answer(&self, account: i64, event_id: &str)
    -> StoreResult<Option<IntakeAnswer>>;
    /// Stores the answer unless one is there; returns the stored one either way.
    async fn save_event_answer(
        &self,
        account: i64,
        answer: &IntakeAnswer,
    ) -> StoreResult<IntakeAnswer>;
    /// Creates an enrollment. Without `allow_reentry`, at most one per (scenario, contact); its
    /// id is then made by [`crate::domain::ids::entry_enrollment_id`] (a store may key it by
    /// the entry).
    async fn create(
        &self,
        enrollment: &Enrollment,
        allow_reentry: bool,
    ) -> StoreResult<EnrollOutcome>;
    /// One enrollment by id.
    async fn get(&self, id: &str) -> StoreResult<Option<Enrollment>>;
    /// Moves the enrollment from `from_seq` to `from_seq + 1` with a new step and state;
    /// `false` when its `seq` was not `from_seq`.
    async fn advance(
        &self,
        id: &str,
        from_seq: u64,
        step_id: Option<&str>,
        state: EnrollmentState,
    ) -> StoreResult<bool>;
}

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

/// Work for the engine, as queue messages. Tagged and versioned so old messages still
/// parse after an upgrade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Task {
    /// Move an enrollment, at `seq`, into `step_id` (`None`: the end), not before
    /// `not_before` (the end of a wait: a timer may fire early).
    #[serde(rename = "advance.v1")]
    AdvanceV1 {
        /// The enrollment to move.
        enrollment_id: String,
        /// The step it moves into; `None`: the end.
        step_id: Option<String>,
        /// The `seq` it must have (the compare-and-set).
        seq: u64,
        /// Not before this time (the end of a wait).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        not_before: Option<Timestamp>,
        /// The walk's time when it is not `not_before` (the end of a wait): after a webhook,
        /// its first attempt's start — the same in every copy of this move, so a walk made
        /// again names the same delivery (its id carries the time). `None` (older messages):
        /// the time it runs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<Timestamp>,
    },
    /// Make the due attempt of a delivery: the one after `attempt` attempts made. A message
    /// whose attempt was made already is dropped (a redelivery never starts a second chain);
    /// `None` (messages queued before this field) acts on the delivery as stored.
    #[serde(rename = "deliver.v1")]
    DeliverV1 {
        /// The delivery.
        delivery_id: String,
        /// How many attempts were made before this one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attempt: Option<u32>,
        /// The delivery's deadline, on the retry that a first attempt queues before storing
        /// its delivery: one that finds no delivery yet looks again, until then.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deadline: Option<Timestamp>,
        /// The start its destination's pace reserved for it (a delivery held back, SPEC §6a).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        slot: Option<Timestamp>,
        /// Held back before its first attempt: the contact was handed back then (SPEC §6a
        /// "scenarios keep moving"), and is not handed back again after the attempt.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        moved_at: Option<Timestamp>,
    },
    /// Make the first attempt of a delivery that is not stored yet: the message carries it
    /// (frozen: every copy sends the same bytes) and the pass it is. webhook-deliver stores
    /// both once, with the attempt's outcome — one write instead of a put before the attempt
    /// and an update after it.
    #[serde(rename = "deliver-first.v1")]
    DeliverFirstV1 {
        /// The delivery, frozen.
        delivery: Box<Delivery>,
        /// The pass it is.
        pass: Pass,
        /// The `updated_at` of the scenario as read when the delivery was made: a copy of the
        /// scenario webhook-deliver holds that is at least this recent signs the attempt
        /// without reading it again (`None`: read it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scenario_at: Option<Timestamp>,
    },
    /// Resend failed deliveries: one new attempt of each (SPEC §7), up to
    /// [`crate::app::RESEND_CHUNK`] a task.
    #[serde(rename = "resend.v1")]
    ResendV1 {
        /// The failed deliveries to resend.
        delivery_ids: Vec<String>,
    },
    /// Fire these occurrences of time-based triggers (each once: SPEC §3), not before their time.
    #[serde(rename = "fire.v1")]
    FireV1 {
        /// The occurrences.
        items: Vec<Scheduled>,
    },
    /// Schedule the occurrences of a newly active time-based scenario for the account's
    /// contacts, one page from `cursor` on; the next page is a new task.
    #[serde(rename = "backfill.v1")]
    BackfillV1 {
        /// The account.
        account: i64,
        /// The scenario that became active.
        scenario_id: String,
        /// Where the previous page ended; `None` for the first.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cursor: Option<String>,
    },
}

impl Task {
    /// Two enqueues of the same key are the same work (a schedule's name derives from it).
    pub fn dedupe_key(&self) -> String {
        match self {
            Task::AdvanceV1 {
                enrollment_id, seq, ..
            } => format!("adv:{enrollment_id}:{seq}"),
            Task::DeliverV1 {
                delivery_id,
                attempt,
                ..
            } => match attempt {
                Some(n) => format!("dlv:{delivery_id}:{n}"),
                None => format!("dlv:{delivery_id}"),
            },
            Task::DeliverFirstV1 { delivery, .. } => format!("dlv:{}:0", delivery.id),
            Task::ResendV1 { delivery_ids } => format!("rsd:{}", delivery_ids.join(",")),
            Task::FireV1 { items } => {
                let ids: Vec<String> = items.iter().map(Scheduled::event_id).collect();
                format!("fire:{}", ids.join(","))
            }
            Task::BackfillV1 {
                scenario_id,
                cursor,
                ..
            } => format!("bfl:{scenario_id}:{}", cursor.as_deref().unwrap_or("")),
        }
    }
}

/// Tasks for later, at a due time (the queued path: SQS, and Scheduler past 15 minutes).
#[async_trait]
pub trait Queue: Send + Sync {
    /// Enqueues a task to run at `due` (now or later, up to the retry window).
    async fn enqueue(&self, task: &Task, due: Timestamp) -> StoreResult<()>;
    /// Enqueues many tasks (an adapter sends them in batches); on `Err` some may have been
    /// sent (every task is safe to repeat).
    async fn enqueue_many(&self, tasks: &[(Task, Timestamp)]) -> StoreResult<()> {
        for (task, due) in tasks {
            self.enqueue(task, *due).await?;
        }
        Ok(())
    }
    /// Sends what this queue holds back (a batch's outbox); a queue that sends at once has
    /// nothing to do. A use case calls it before a write that says its tasks were sent.
    async fn flush(&self) -> StoreResult<()> {
        Ok(())
    }
}

/// An outbound webhook request.
#[derive(Debug, Clone)]
pub struct OutboundRequest<'a> {
    /// The target URL.
    pub url: &'a str,
    /// The headers, signature and the step's own included.
    pub headers: &'a [(String, String)],
    /// The JSON body, as frozen.
    pub body: &'a str,
}

/// Sends webhooks (`hookline-sender`, over reqwest).
#[async_trait]
pub trait WebhookSender: Send + Sync {
    /// One attempt: POST, no redirects followed, outbound safety checked on the address
    /// connected to. Never fails: every problem is an outcome with an error.
    async fn send(&self, request: &OutboundRequest<'_>) -> AttemptOutcome;
    /// Resolves the URL's host and refuses it if any address is not public (unless private
    /// targets are allowed). `Err` carries the reason. Unresolvable names pass.
    async fn check_target(&self, url: &url::Url) -> Result<(), String>;
    /// Whether private targets are allowed (`--allow-private-targets`).
    fn allows_private_targets(&self) -> bool;
}

/// Everything the use cases need, built once per process.
#[derive(Clone)]
pub struct Ports {
    /// Scenarios.
    pub scenarios: Arc<dyn ScenarioStore>,
    /// Contact snapshots.
    pub contacts: Arc<dyn ContactStore>,
    /// Enrollments and event answers.
    pub enrollments: Arc<dyn EnrollmentStore>,
    /// Passes, deliveries and counters.
    pub deliveries: Arc<dyn DeliveryStore>,
    /// API keys.
    pub keys: Arc<dyn KeyStore>,
    /// Occurrences of time-based triggers.
    pub occurrences: Arc<dyn OccurrenceStore>,
    /// How work moves between stages: inline (local) or queued (AWS).
    pub pipeline: Pipeline,
    /// The webhook sender.
    pub sender: Arc<dyn WebhookSender>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// New ids and jitter.
    pub ids: Arc<dyn Ids>,
    /// Where the state of each destination (SPEC §6a) is kept: what `GET /v1/destinations`
    /// reads.
    pub destinations: Arc<dyn DestinationBoard>,
}

/// Ids from ULIDs (sortable by creation time) and jitter from the thread RNG.
pub struct UlidIds;

impl Ids for UlidIds {
    fn new_id(&self, prefix: &str) -> String {
        format!("{prefix}_{}", ulid::Ulid::new().to_string().to_lowercase())
    }

    fn random_unit(&self) -> f64 {
        rand::random::<f64>()
    }
}

/// An adapter's answer to a `cursor` it did not issue: the caller's fault (400).
#[derive(Debug, thiserror::Error)]
#[error("this cursor was not issued by a previous page")]
pub struct BadCursor;
