//! The store ports on SQLite. Each port method runs atomically (in a savepoint of the
//! database thread's batch, see [`Db`]), so every compare-and-set and every "record the pass
//! and its delivery together" is all or nothing.

use hookline_core::domain::time::to_millis;
use jiff::Timestamp;

use crate::Db;

mod contacts;
mod deliveries;
mod enrollments;
mod gauges;
mod keys;
mod occurrences;
mod scenarios;

pub(crate) use contacts::put_snapshot;
pub(crate) use deliveries::{insert_delivery, insert_pass, update_delivery};
pub use gauges::Gauges;
pub(crate) use occurrences::{insert_occurrence, read_occurrence};

/// Every store port of the engine on one SQLite database.
#[derive(Clone)]
pub struct SqliteStore {
    db: Db,
}

impl SqliteStore {
    pub fn new(db: Db) -> Self {
        SqliteStore { db }
    }

    pub(crate) fn db(&self) -> &Db {
        &self.db
    }
}

pub(crate) fn now_ms() -> i64 {
    to_millis(Timestamp::now())
}

/// The one-entry-per-contact key of a scenario without re-entry.
pub(crate) fn entry_key(scenario_id: &str, contact_id: i64) -> String {
    format!("{scenario_id}:{contact_id}")
}
