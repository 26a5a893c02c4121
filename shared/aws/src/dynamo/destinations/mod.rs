//! Destinations on AWS (SPEC §6a): the state of each destination shared by every
//! `webhook-deliver` instance, in one small item (`DST#{account}`, `{dst_ id}`: `url`, `state`
//! — the core's [`Destination`] as JSON —, `ver`, `fails`).
//!
//! - **Reads** go through an in-process cache ([`CACHE_TTL`], 1 s): a healthy destination costs
//!   one read per second per instance, no write.
//! - **Writes** happen only when the state changes — a refusal, a failed attempt (`fails`, one
//!   atomic `ADD`, and the 5th in a row opens the circuit), a probe claimed and its answer,
//!   healing — and, for a paced destination (a `rateLimit` or a pace learned from refusals),
//!   once per attempt: the start it claims (GCRA's theoretical arrival time, `next_start`).
//!   Every change of `state` is a compare-and-set on `ver`; a conflict reads again (strongly
//!   consistent) and applies the change to what another instance wrote.
//! - **Concurrency** is not written: each instance lets at most a share of
//!   `HOOKLINE_DESTINATION_CONCURRENCY` attempts per destination be in flight
//!   (`concurrency / HOOKLINE_DELIVER_INSTANCES`, at least 1), and the deliver queue's event
//!   source runs at most `HOOKLINE_DELIVER_INSTANCES` instances (`MaximumConcurrency`). An
//!   attempt without a free slot waits in-process for one (at most [`SLOT_WAIT`]), then is
//!   held back like the others.
//!
//! The parts: this file holds the constants and this instance's view of a destination;
//! `item.rs` reads, writes and claims the item; `board.rs` answers the destinations' board;
//! `gate.rs` lets attempts start (the gate) and takes their answers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hookline_core::domain::destination::Destination;
use hookline_core::ports::Clock;
use jiff::Timestamp;
use tokio::sync::Notify;

use super::*;

mod board;
mod gate;
mod item;

/// How long a destination's state read is trusted.
pub const CACHE_TTL: Duration = Duration::from_millis(1_000);
/// A hold decided on a read older than this reads again first (a pause or a circuit may have
/// ended since).
const HOLD_REFRESH: Duration = Duration::from_millis(250);
/// How long an attempt waits in-process for a free slot of its destination before it is held
/// back (queued again) instead.
pub const SLOT_WAIT: Duration = Duration::from_secs(5);
/// A start the pace gives within this is waited in-process (by the caller:
/// [`Gate::Go`](hookline_core::ports::Gate::Go)'s `at`); a later one is reserved and the
/// delivery queued again for it.
pub const WAIT_IN_PROCESS: Duration = Duration::from_millis(1_500);
/// A reserved start missed by more than this, or by more than half the pace's interval (its
/// delivery came back late), is claimed again rather than taken late, which would bunch
/// starts together.
const LATE: Duration = Duration::from_millis(100);
/// A probe that never reported (its instance died) no longer blocks the next one after this.
const PROBE_STALE: Duration = Duration::from_secs(30);
/// Unused destination items expire after this long (`expires_at`).
const ITEM_DAYS: i64 = 30;
/// The most often an instance writes what it saw accepted (a learned pace's increase).
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Compare-and-set tries before giving up (the message is retried).
const TRIES: usize = 8;

type Key = (i64, String);

/// This instance's view of a destination.
struct Kept {
    /// The shared state as last read or written, over this instance's own copy (which keeps
    /// the start times of the attempts it saw accepted, to learn a pace from).
    state: Destination,
    /// The item's version (0: no item yet).
    ver: i64,
    /// Failed attempts in a row, over every instance.
    fails: u32,
    read_at: Option<Instant>,
    /// Attempts in flight from this instance.
    in_flight: u32,
    /// This instance holds the probe of a failing destination.
    probing: bool,
    /// Starts of attempts accepted here since the last write, for the learned pace's increase.
    accepted: Vec<Timestamp>,
    /// The pace's next free start (ms) as last claimed or read.
    tat: Option<i64>,
    /// When this instance last wrote its accepted attempts (the learned pace's increase).
    flushed_at: Option<Instant>,
}

impl Default for Kept {
    fn default() -> Self {
        Kept {
            state: Destination::default(),
            ver: 0,
            fails: 0,
            read_at: None,
            in_flight: 0,
            probing: false,
            accepted: Vec::new(),
            tat: None,
            flushed_at: None,
        }
    }
}

/// The destinations' board and gate over the table (see the module's notes).
#[derive(Clone)]
pub struct DynamoDestinations {
    store: DynamoStore,
    clock: Arc<dyn Clock>,
    /// Attempts in flight per destination from this instance.
    share: u32,
    kept: Arc<Mutex<HashMap<Key, Kept>>>,
    freed: Arc<Notify>,
}

/// Copies the shared fields of `stored` over `local` (keeping what only `local` knows).
fn adopt(local: &mut Destination, stored: Destination) {
    let Destination {
        configured,
        learned,
        next_start,
        paused_until,
        next_pause,
        refused_at,
        failures,
        failing_since,
        next_probe,
        probing,
        in_flight: _,
        last_attempt_at,
        last_error,
        ..
    } = stored;
    local.configured = configured;
    local.learned = learned;
    local.next_start = next_start;
    local.paused_until = paused_until;
    local.next_pause = next_pause;
    local.refused_at = refused_at;
    local.failures = failures;
    local.failing_since = failing_since;
    local.next_probe = next_probe;
    local.probing = probing;
    local.last_attempt_at = last_attempt_at;
    local.last_error = last_error;
}

fn since(a: Timestamp, b: Timestamp) -> Duration {
    a.duration_since(b).try_into().unwrap_or(Duration::ZERO)
}
