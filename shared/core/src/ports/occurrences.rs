//! Time-based triggers' port (SPEC §3): the occurrences that are due to fire, indexed by time.
//!
//! An occurrence is a (scenario, contact, nominal date) with the instant it fires at. The store
//! holds the pending ones; whoever stores a snapshot cancels the contact's old occurrences and
//! schedules the new ones, and whoever fires one schedules the next (yearly). The rows are an
//! index, not the truth: firing re-reads the contact and the scenario, so an occurrence that a
//! crash left behind (a moved date, an archived scenario) fires nothing.
//!
//! Local mode keeps them in SQLite (fired by the workers' timers); on AWS they are items under
//! their minute's bucket, swept by a one-minute tick.

use async_trait::async_trait;
use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use super::{Page, StoreResult};
use crate::domain::occurrence::Occurrence;

/// One pending occurrence: scenario `scenario_id` fires for `contact_id` at `at`, for the
/// nominal `date` (its identity: a scenario fires once per contact and date).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Scheduled {
    /// The account.
    pub account: i64,
    /// The time-based scenario.
    pub scenario_id: String,
    /// The contact.
    pub contact_id: i64,
    /// The nominal date (the identity).
    pub date: Date,
    /// The instant it fires.
    pub at: Timestamp,
}

impl Scheduled {
    /// One occurrence of a scenario for a contact.
    pub fn new(account: i64, scenario_id: &str, contact_id: i64, o: Occurrence) -> Scheduled {
        Scheduled {
            account,
            scenario_id: scenario_id.to_string(),
            contact_id,
            date: o.date,
            at: o.at,
        }
    }

    /// Its date and instant.
    pub fn occurrence(&self) -> Occurrence {
        Occurrence {
            date: self.date,
            at: self.at,
        }
    }

    /// The event id a firing claims: the same occurrence fires at most once (the prefix is
    /// refused on platform events).
    pub fn event_id(&self) -> String {
        format!(
            "{}occurrence:{}:{}:{}",
            crate::domain::event::RESERVED_ID_PREFIX,
            self.scenario_id,
            self.contact_id,
            self.date
        )
    }
}

/// How far the sweep has gone: every minute up to `minute` is swept, and minute `minute + 1`
/// up to `cursor` (a page cursor of [`OccurrenceStore::in_minute`]) when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepState {
    /// Every minute up to this one is swept.
    pub minute: i64,
    /// Where the next minute's sweep stopped, if it started.
    pub cursor: Option<String>,
}

/// The minute an instant falls in (its bucket).
pub fn minute_of(at: Timestamp) -> i64 {
    at.as_second().div_euclid(60)
}

/// Pending occurrences of time-based triggers, indexed by the minute they fire.
#[async_trait]
pub trait OccurrenceStore: Send + Sync {
    /// Stores each occurrence (storing one that is there already changes nothing).
    async fn schedule(&self, items: &[Scheduled]) -> StoreResult<()>;
    /// Removes exactly these occurrences (same scenario, contact, date and minute), if present:
    /// the same occurrence stored since in another minute (moved by a time zone change) stays.
    async fn cancel(&self, items: &[Scheduled]) -> StoreResult<()>;
    /// One page of the occurrences firing in minute `minute` ([`minute_of`]), in no particular
    /// order, from `cursor` (the previous page's `next_cursor`); at most `limit` items. Every
    /// occurrence of the minute is in exactly one page (a page may be empty while there is
    /// more). An item that cannot be read is logged and skipped.
    async fn in_minute(
        &self,
        minute: i64,
        cursor: Option<&str>,
        limit: usize,
    ) -> StoreResult<Page<Scheduled>>;
    /// How far the sweep has gone ([`crate::Hookline::sweep`]), if it ever ran.
    async fn swept(&self) -> StoreResult<Option<SweepState>>;
    /// Records the sweep's progress; never moves back to an earlier minute.
    async fn set_swept(&self, state: &SweepState) -> StoreResult<()>;
}
