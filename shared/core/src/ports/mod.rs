//! The ports the use cases need. Adapters: `hookline-local` (SQLite), `hookline-aws`
//! (DynamoDB, SQS, EventBridge Scheduler), `hookline-sender` (reqwest).
//! Each port has one contract suite in `crate::contract` (feature `testkit`), run against every
//! adapter.

use std::sync::Arc;

use jiff::Timestamp;

mod contacts;
mod deliveries;
mod destinations;
mod enrollments;
mod flow;
mod keys;
mod occurrences;
mod queue;
mod scenarios;
mod sender;
pub use contacts::*;
pub use deliveries::*;
pub use destinations::*;
pub use enrollments::*;
pub use flow::*;
pub use keys::*;
pub use occurrences::*;
pub use queue::*;
pub use scenarios::*;
pub use sender::*;

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
