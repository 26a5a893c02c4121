//! The destinations' ports (SPEC §6a): where their states are kept, and the gate a runtime
//! that shares them across processes asks before each attempt.

use async_trait::async_trait;
use jiff::Timestamp;

use super::StoreResult;

/// What a runtime knows of a destination now (SPEC §6a): its state, and the counts only the
/// runtime that holds the work can tell.
#[derive(Debug, Clone, PartialEq)]
pub struct DestinationState {
    /// The destination's state machine as kept.
    pub state: crate::domain::destination::Destination,
    /// Deliveries held back by pace or by a failing destination (`None`: not counted here).
    pub waiting: Option<u64>,
}

/// The destinations' states, as a runtime keeps them (local mode in memory; AWS in an item
/// per destination). Read by the health routes; written by the runtime's workers.
#[async_trait]
pub trait DestinationBoard: Send + Sync {
    /// The state of `url` of `account`, when anything was sent to it since it was kept.
    async fn get(&self, account: i64, url: &str) -> StoreResult<Option<DestinationState>>;
    /// The URLs of the account it keeps a state for (any order).
    async fn urls(&self, account: i64) -> StoreResult<Vec<String>>;
    /// The gate the queued path asks before each attempt, when the destinations' state is
    /// shared by many processes (AWS). `None` (local mode: its workers hold deliveries
    /// themselves): the queued path attempts without asking.
    fn gate(&self) -> Option<&dyn DestinationGate> {
        None
    }
}

/// What a [`DestinationGate`] answers before an attempt (SPEC §6a).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Start it at `at` (a probe of a failing destination when `probe`); tell
    /// [`DestinationGate::finished`] once it is made.
    Go {
        /// It is the one probe of a failing destination.
        probe: bool,
        /// The start it was given: now, or the pace's next start within a moment (the caller
        /// readies the request, then waits for it: what leaves at `at` keeps the pace).
        at: Timestamp,
    },
    /// Held back until `until` (pace, a pause, a failing destination, or no free slot).
    /// `reserved`: the pace's start at `until` is this delivery's (give it back to
    /// [`DestinationGate::admit`] then). `health`: why, for the deadline's error text.
    Wait {
        /// Not before this time.
        until: Timestamp,
        /// The pace's start at `until` is this delivery's.
        reserved: bool,
        /// The destination's health (for the deadline's error).
        health: crate::domain::destination::Health,
    },
}

/// Pace, circuit and concurrency of the destinations shared by every process that makes
/// attempts (the AWS adapter: a small item per destination, read through a short cache and
/// written when its state changes). Waiting is not an attempt: a held delivery keeps its
/// attempts and retry schedule.
#[async_trait]
pub trait DestinationGate: Send + Sync {
    /// May an attempt to `url` of `account` start now? `rate_limit`: the configured pace;
    /// `reserved`: a start this delivery was given before by [`Gate::Wait`]; `deadline`: no
    /// start is reserved after it, and a delivery past it is not held for a free slot. The
    /// gate may wait briefly in-process (a start within a second, a slot that frees).
    async fn admit(
        &self,
        account: i64,
        url: &str,
        rate_limit: Option<f64>,
        reserved: Option<Timestamp>,
        deadline: Timestamp,
    ) -> StoreResult<Gate>;
    /// An attempt let start by [`Self::admit`] (at `started`) ended with `answer`.
    async fn finished(
        &self,
        account: i64,
        url: &str,
        started: Timestamp,
        answer: crate::domain::destination::Answer,
        error: Option<&str>,
    ) -> StoreResult<()>;
}
