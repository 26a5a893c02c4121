//! The workers' timers: when each piece of work runs next, what runs now, what failed lately and
//! what finished lately. Each collection has one owner, and these invariants hold between calls:
//! - [`Due`]: a piece of work has at most one due time (the earlier one wins), in due order; at
//!   most [`MAX_TIMERS`] are kept (past it the latest are dropped: the rows still have them).
//! - [`Running`]: running work has no due time: one asked for while it runs (its own next
//!   retry) waits in `rearm` and is set when it finishes. `waiting` counts the running work
//!   that has no slot yet.
//! - [`Backoff`]: work that failed (a store error) is not due before its pause ends — 1 s,
//!   doubling up to a minute — and is forgotten once it succeeds.
//! - [`Recent`]: the work finished lately (a bounded first-in first-out set): an in-memory copy
//!   of a delivery handed over after a timer attempted it from its row is not attempted again.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Duration;

use hookline_core::ports::WorkKey;
use jiff::Timestamp;

/// Most timers kept in memory; past it the latest are dropped (a scan finds them in time).
pub(super) const MAX_TIMERS: usize = 100_000;
/// How many finished pieces of work are remembered (a few seconds' worth at full speed).
const MAX_FINISHED: usize = 50_000;
/// The first wait before work that failed (a store error) runs again; it doubles, up to a minute.
const RETRY_FAILED: Duration = Duration::from_secs(1);

/// The due time of each piece of work, in due order.
#[derive(Default)]
pub(super) struct Due {
    /// (due, work) in due order.
    queue: BTreeSet<(Timestamp, WorkKey)>,
    /// The due time of each work in `queue` (the same pairs).
    at: HashMap<WorkKey, Timestamp>,
}

impl Due {
    /// Sets `due`, unless the work has an earlier time already.
    fn set(&mut self, key: WorkKey, due: Timestamp) {
        if self.queue.len() >= MAX_TIMERS
            && !self.at.contains_key(&key)
            && self.queue.last().is_some_and(|(last, _)| *last <= due)
        {
            return; // memory stays bounded; the rows still have it
        }
        if let Some(&old) = self.at.get(&key) {
            if old <= due {
                return;
            }
            self.queue.remove(&(old, key.clone()));
        }
        self.queue.insert((due, key.clone()));
        self.at.insert(key, due);
        if self.queue.len() > MAX_TIMERS
            && let Some((_, dropped)) = self.queue.pop_last()
        {
            self.at.remove(&dropped);
        }
    }

    fn cancel(&mut self, key: &WorkKey) {
        if let Some(old) = self.at.remove(key) {
            self.queue.remove(&(old, key.clone()));
        }
    }

    /// The due time of `key`, if it has one.
    #[cfg(test)]
    pub(super) fn at(&self, key: &WorkKey) -> Option<Timestamp> {
        self.at.get(key).copied()
    }

    /// The earliest due time.
    pub(super) fn first(&self) -> Option<Timestamp> {
        self.queue.first().map(|(at, _)| *at)
    }

    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty() && self.at.is_empty()
    }
}

/// The work running now.
#[derive(Default)]
pub(super) struct Running {
    running: HashSet<WorkKey>,
    /// Due times asked for by work while it ran (its next retry), set when it finishes.
    rearm: HashMap<WorkKey, Timestamp>,
    /// Running work still waiting for a slot.
    pub waiting: usize,
}

impl Running {
    pub(super) fn contains(&self, key: &WorkKey) -> bool {
        self.running.contains(key)
    }
}

/// Work that failed: not before this time, and how many times in a row.
#[derive(Default)]
struct Backoff(HashMap<WorkKey, (Timestamp, u32)>);

/// The work finished lately, oldest first, at most [`MAX_FINISHED`].
#[derive(Default)]
struct Recent {
    set: HashSet<WorkKey>,
    order: VecDeque<WorkKey>,
}

impl Recent {
    fn add(&mut self, key: WorkKey) {
        if self.set.insert(key.clone()) {
            self.order.push_back(key);
        }
        while self.order.len() > MAX_FINISHED {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }
}

/// The timers of the workers (see the module's invariants).
#[derive(Default)]
pub(super) struct Timers {
    pub due: Due,
    pub running: Running,
    backoff: Backoff,
    recent: Recent,
}

impl Timers {
    /// Sets a due time: kept until the work finishes when it runs now, never before its pause
    /// when it failed lately, and the earlier time when it has one already.
    pub fn set(&mut self, key: WorkKey, due: Timestamp) {
        if self.running.contains(&key) {
            // set when it finishes (its own next retry, usually)
            let at = self.running.rearm.entry(key).or_insert(due);
            *at = (*at).min(due);
            return;
        }
        let due = match self.backoff.0.get(&key) {
            Some((until, _)) => due.max(*until),
            None => due,
        };
        self.due.set(key, due);
    }

    /// Marks `key` running (it leaves the due times), waiting for a slot; false when it runs
    /// already.
    pub fn start(&mut self, key: &WorkKey) -> bool {
        if !self.running.running.insert(key.clone()) {
            return false;
        }
        self.due.cancel(key);
        self.running.waiting += 1;
        true
    }

    /// Running work got its slot (or needs none).
    pub fn slotted(&mut self) {
        self.running.waiting -= 1;
    }

    /// Running work gave up before it ran (stopping, or left to the rows): no longer running,
    /// nothing remembered.
    pub fn abandon(&mut self, key: &WorkKey) {
        self.running.running.remove(key);
    }

    /// Running work asks to run again at `at` once it finishes.
    pub fn rearm(&mut self, key: WorkKey, at: Timestamp) {
        self.running.rearm.insert(key, at);
    }

    /// Has `key` finished lately?
    pub fn finished_lately(&self, key: &WorkKey) -> bool {
        self.recent.set.contains(key)
    }

    /// Running work finished: the time it asked for meanwhile is set, and it is remembered.
    pub fn finish(&mut self, key: WorkKey) {
        self.running.running.remove(&key);
        if let Some(at) = self.running.rearm.remove(&key) {
            self.set(key.clone(), at);
        }
        self.recent.add(key);
    }

    /// Finished work succeeded: its pauses are forgotten.
    pub fn succeeded(&mut self, key: &WorkKey) {
        self.backoff.0.remove(key);
    }

    /// Work that failed waits 1 s, 2 s, 4 s … up to a minute before it runs again.
    pub fn hold(&mut self, key: WorkKey, now: Timestamp) {
        let tries = self.backoff.0.get(&key).map_or(0, |(_, n)| *n);
        let wait = RETRY_FAILED * 2u32.pow(tries.min(6));
        let until = now.checked_add(wait).unwrap_or(now);
        self.backoff.0.insert(key.clone(), (until, tries + 1));
        self.due.cancel(&key);
        self.set(key, until);
    }

    /// Removes the due time of `key`.
    pub fn cancel(&mut self, key: &WorkKey) {
        self.due.cancel(key);
    }

    /// The work due at `now`, taken off the due times.
    pub fn pop_due(&mut self, now: Timestamp) -> Vec<WorkKey> {
        let mut due = Vec::new();
        while let Some((at, _)) = self.due.queue.first() {
            if *at > now {
                break;
            }
            if let Some((_, key)) = self.due.queue.pop_first() {
                self.due.at.remove(&key);
                due.push(key);
            }
        }
        due
    }
}
