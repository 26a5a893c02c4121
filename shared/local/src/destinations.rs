//! The destinations of local mode (SPEC §6a): the state machine of each (account, URL)
//! ([`Destination`]) with the deliveries it holds back, kept in memory. The rows stay the
//! truth of what is due: a held delivery keeps its row due, so a restart finds it again.
//!
//! Invariant: a delivery is held by at most one destination, and a held delivery is "running"
//! for the workers' timers (no timer starts it again while it waits here).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use hookline_core::domain::delivery::Delivery;
use hookline_core::domain::destination::{Admit, Destination};
use hookline_core::ports::{DestinationBoard, DestinationState, StoreResult, WorkKey};
use jiff::Timestamp;

/// A destination: an account and a URL exactly as the step names it.
pub type DestKey = (i64, String);

/// A delivery waiting for its destination.
pub struct Held {
    pub key: WorkKey,
    pub delivery: Box<Delivery>,
    /// The contact moved on already (its first attempt was held back).
    pub moved: bool,
    /// Released by a destination that became healthy again: attempted before its due time.
    pub early: bool,
    /// Since when it waits.
    pub since: Timestamp,
}

/// Most retries remembered per destination, to release at once when it heals.
const MAX_BACKOFF: usize = 10_000;

#[derive(Default)]
pub struct Entry {
    pub state: Destination,
    pub waiting: VecDeque<Held>,
    /// Deliveries of this destination waiting for their own retry (released when it heals).
    pub backoff: HashSet<String>,
}

impl Entry {
    /// The time this destination admits again, when that needs no attempt to finish (held
    /// deliveries' deadlines are the sweep's, every 250 ms).
    pub fn wake(&self, now: Timestamp, concurrency: u32) -> Option<Timestamp> {
        if self.waiting.is_empty() {
            return None;
        }
        match self.state.allowed_at(now, concurrency) {
            Admit::At(at) => Some(at),
            // admitted by the next pump, or waiting for a free slot (a finished work pumps)
            Admit::Go { .. } | Admit::Full => None,
        }
    }

    /// Remembers (or forgets) a delivery waiting for its own retry.
    pub fn note_backoff(&mut self, id: &str, waiting_retry: bool) {
        if waiting_retry {
            if self.backoff.len() < MAX_BACKOFF {
                self.backoff.insert(id.to_string());
            }
        } else {
            self.backoff.remove(id);
        }
    }
}

/// Every destination with its state and held deliveries. Shared by the workers (which change
/// it) and the health routes ([`DestinationBoard`]).
#[derive(Default)]
pub struct Registry {
    pub entries: HashMap<DestKey, Entry>,
    /// How many deliveries are held, over every destination.
    pub held: usize,
}

/// The [`DestinationBoard`] of local mode: the workers' registry, read.
#[derive(Clone, Default)]
pub struct LocalDestinations {
    pub(crate) registry: Arc<Mutex<Registry>>,
}

impl LocalDestinations {
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl DestinationBoard for LocalDestinations {
    async fn get(&self, account: i64, url: &str) -> StoreResult<Option<DestinationState>> {
        let registry = self.lock();
        Ok(registry
            .entries
            .get(&(account, url.to_string()))
            .map(|e| DestinationState {
                state: e.state.clone(),
                waiting: Some(e.waiting.len() as u64),
            }))
    }

    async fn urls(&self, account: i64) -> StoreResult<Vec<String>> {
        let registry = self.lock();
        Ok(registry
            .entries
            .keys()
            .filter(|(a, _)| *a == account)
            .map(|(_, url)| url.clone())
            .collect())
    }
}

/// What [`Registry::pump`] lets start: a held delivery, its destination, and whether it is a
/// probe of a failing destination.
pub struct Admitted {
    pub dest: DestKey,
    pub held: Held,
    pub probe: bool,
}

/// What [`Registry::sweep`] found to do.
#[derive(Default)]
pub struct Swept {
    /// Held deliveries whose deadline came while their destination held them back, with the
    /// destination's health.
    pub expired: Vec<(Held, hookline_core::domain::destination::Health)>,
    /// First attempts held back: their contacts move on now.
    pub move_on: Vec<Delivery>,
}

/// A first attempt waiting this long for a slot of its (healthy) destination moves its contact
/// on anyway; one held back by pace or by a failing destination moves it on at once.
const MOVE_ON_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

impl Registry {
    /// Holds `held` for `dest` (configured pace `limit`).
    pub fn hold(&mut self, dest: DestKey, held: Held, limit: Option<f64>) {
        let entry = self.entries.entry(dest).or_default();
        entry.state.configure(limit);
        entry.note_backoff(&held.delivery.id, false);
        entry.waiting.push_back(held);
        self.held += 1;
    }

    /// Lets start what the destinations admit, fairly: one admission per account in turn, and
    /// within an account one per destination in turn, while `take_slot` finds a free slot.
    pub fn pump<S>(
        &mut self,
        now: Timestamp,
        concurrency: u32,
        turn: &mut u64,
        mut take_slot: impl FnMut() -> Option<S>,
    ) -> Vec<(Admitted, S)> {
        let mut started = Vec::new();
        // accounts and their destinations with work waiting, in a rotating order
        let mut by_account: std::collections::BTreeMap<i64, Vec<String>> = Default::default();
        for ((account, url), entry) in &self.entries {
            if !entry.waiting.is_empty() {
                by_account.entry(*account).or_default().push(url.clone());
            }
        }
        if by_account.is_empty() {
            return started;
        }
        let mut rings: Vec<(i64, VecDeque<String>)> = by_account
            .into_iter()
            .map(|(a, mut urls)| {
                urls.sort();
                let shift = (*turn as usize) % urls.len();
                urls.rotate_left(shift);
                (a, urls.into())
            })
            .collect();
        let shift = (*turn as usize) % rings.len();
        rings.rotate_left(shift);
        *turn = turn.wrapping_add(1);
        loop {
            let mut progressed = false;
            for (account, ring) in rings.iter_mut() {
                // this account's next destination that admits
                for _ in 0..ring.len() {
                    let Some(url) = ring.pop_front() else { break };
                    let key = (*account, url);
                    let Some(entry) = self.entries.get_mut(&key) else {
                        continue;
                    };
                    if entry.waiting.is_empty() {
                        continue;
                    }
                    let Admit::Go { probe } = entry.state.admit(now, concurrency) else {
                        ring.push_back(key.1);
                        continue;
                    };
                    let Some(slot) = take_slot() else {
                        entry.state.release();
                        return started; // no slot free: the next finished work pumps again
                    };
                    let Some(held) = entry.waiting.pop_front() else {
                        entry.state.release();
                        continue;
                    };
                    self.held -= 1;
                    ring.push_back(key.1.clone());
                    started.push((
                        Admitted {
                            dest: key,
                            held,
                            probe,
                        },
                        slot,
                    ));
                    progressed = true;
                    break;
                }
            }
            if !progressed {
                return started;
            }
        }
    }

    /// Deadlines and held first attempts: what expires now fails (unless its destination
    /// admits it: then it goes first), and held first attempts move their contacts on.
    pub fn sweep(&mut self, now: Timestamp, concurrency: u32) -> Swept {
        let mut swept = Swept::default();
        for entry in self.entries.values_mut() {
            if entry.waiting.is_empty() {
                continue;
            }
            let allowed = entry.state.allowed_at(now, concurrency);
            let held_back = matches!(allowed, Admit::At(_))
                || (entry.state.failing_since.is_some() && !matches!(allowed, Admit::Go { .. }));
            let health = entry.state.health(now);
            let mut kept = VecDeque::with_capacity(entry.waiting.len());
            let mut first = VecDeque::new();
            for mut h in entry.waiting.drain(..) {
                if h.delivery.deadline <= now {
                    if held_back {
                        swept.expired.push((h, health));
                        continue;
                    }
                    first.push_back(h); // attempted as soon as a slot frees
                    continue;
                }
                if !h.moved
                    && h.delivery.attempt_count == 0
                    && (held_back
                        || now.as_millisecond() - h.since.as_millisecond()
                            >= MOVE_ON_AFTER.as_millis() as i64)
                {
                    h.moved = true;
                    swept.move_on.push((*h.delivery).clone());
                }
                kept.push_back(h);
            }
            first.extend(kept);
            entry.waiting = first;
        }
        self.held -= swept.expired.len();
        swept
    }

    /// The earliest time a sweep or a pump has something to do without an attempt finishing.
    pub fn wake(&self, now: Timestamp, concurrency: u32) -> Option<Timestamp> {
        self.entries
            .values()
            .filter_map(|e| e.wake(now, concurrency))
            .min()
    }
}
