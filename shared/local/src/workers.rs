//! The workers of local mode: attempts and ends of waits, many at once, each when it is due.
//!
//! New work arrives in memory ([`LocalDispatch`]: a delivery created by an event, a retry, a
//! wait); due times are kept in an in-memory timer set; and every [`SCAN_EVERY`] the rows
//! themselves are asked what falls due in the next [`HORIZON`] ([`FlowStore::due`]), which is
//! how work survives a crash or a restart: the rows are the truth, memory only a shortcut.
//! A timer fires at its time, never before; one piece of work runs at most once at a time.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookline_core::Hookline;
use hookline_core::app::{Made, Outcome};
use hookline_core::domain::delivery::Delivery;
use hookline_core::domain::destination::DEFAULT_CONCURRENCY;
use hookline_core::ports::{Dispatch, DueWork, FlowStore, WorkKey};
use jiff::Timestamp;
use tokio::sync::{Semaphore, mpsc, watch};

use crate::destinations::{DestKey, Held, LocalDestinations};

mod gated;
mod timers;

use timers::Timers;

/// How often the rows are asked for due work.
const SCAN_EVERY: Duration = Duration::from_millis(500);
/// How far ahead a scan looks (more than `SCAN_EVERY`, so a timer is set before its time).
const HORIZON: Duration = Duration::from_secs(1);
/// Most rows of each kind one scan takes. Rows being worked on are read again by the next scan
/// (they are still due), so this bounds how much new work a scan can find: 10,000 birthdays
/// due at 09:00 are all found by the scan before it (measured: at 1,000 the firing of 10,000
/// took 4.5 s, bound by the scans; see the README).
const SCAN_LIMIT: usize = 10_000;

/// How often held deliveries are looked at (deadlines, first attempts that move on).
const SWEEP_EVERY: Duration = Duration::from_millis(250);

/// How long a graceful stop waits for the work in flight (an attempt takes at most 15 s).
const DRAIN: Duration = Duration::from_secs(20);

enum Work {
    Now(Box<Delivery>),
    Due(DueWork),
    Resend(Vec<String>),
    /// A delivery read and ready for its destination, with the destination's configured pace.
    Ready(Box<Held>, Option<f64>),
    /// An attempt let start by its destination finished.
    Done(Box<Done>),
    /// Other work that held a slot finished: the destinations may use it.
    SlotFree,
}

/// What a finished attempt tells its destination.
struct Done {
    dest: DestKey,
    key: WorkKey,
    started: Timestamp,
    result: anyhow::Result<Option<Made>>,
}

/// The engine's [`Dispatch`] port in local mode: a channel to [`Workers`].
#[derive(Clone)]
pub struct LocalDispatch {
    tx: mpsc::UnboundedSender<Work>,
}

impl Dispatch for LocalDispatch {
    fn deliver_now(&self, delivery: Delivery) {
        let _ = self.tx.send(Work::Now(Box::new(delivery)));
    }

    fn due(&self, work: DueWork) {
        let _ = self.tx.send(Work::Due(work));
    }

    fn resend(&self, delivery_ids: Vec<String>) {
        let _ = self.tx.send(Work::Resend(delivery_ids));
    }
}

/// The receiving end of a [`LocalDispatch`] (and a weak sender for the workers' own tasks:
/// the channel closes when every [`LocalDispatch`] is gone).
/// It carries the destinations the workers will keep, so that the engine's ports can read
/// them ([`Inbox::destinations`]) before the workers start.
pub struct Inbox(
    mpsc::UnboundedReceiver<Work>,
    mpsc::WeakUnboundedSender<Work>,
    LocalDestinations,
);

impl Inbox {
    /// The destinations' board of these workers (the engine's `destinations` port).
    pub fn destinations(&self) -> LocalDestinations {
        self.2.clone()
    }
}

pub fn dispatch_channel() -> (LocalDispatch, Inbox) {
    let (tx, rx) = mpsc::unbounded_channel();
    let weak = tx.downgrade();
    (
        LocalDispatch { tx },
        Inbox(rx, weak, LocalDestinations::new()),
    )
}

/// Sends to the workers' loop from one of their tasks (nothing when it has stopped).
#[derive(Clone)]
struct Back(mpsc::WeakUnboundedSender<Work>);

impl Back {
    fn send(&self, work: Work) {
        if let Some(tx) = self.0.upgrade() {
            let _ = tx.send(work);
        }
    }
}

pub struct Workers {
    engine: Hookline,
    flow: Arc<dyn FlowStore>,
    inbox: Inbox,
    slots: Arc<Semaphore>,
    concurrency: usize,
    timers: Arc<Mutex<Timers>>,
    /// Set when the loop stops: work still waiting for a slot then gives up (its row stays due)
    /// instead of starting a POST that the process exit would cut short.
    stopping: Arc<std::sync::atomic::AtomicBool>,
    /// A backfill task is running.
    backfilling: Arc<std::sync::atomic::AtomicBool>,
    /// The destinations and the deliveries they hold back (SPEC §6a).
    dests: LocalDestinations,
    /// Attempts in flight toward one destination at most.
    dest_concurrency: u32,
    /// Whose turn it is first at the next pump (fairness).
    turn: u64,
    back: Back,
    resends: Arc<Mutex<Resends>>,
}

/// Most pieces of work waiting for a slot; past it, work handed over in memory is left to the
/// rows (a scan finds it when slots free up), so a slow receiver cannot grow memory without end.
const MAX_WAITING: usize = 20_000;
/// Most resends waiting their turn (ten full `resend-failed` calls); past it one asked for is
/// not queued (logged).
const MAX_RESENDS: usize = 100_000;

/// How many slots resends may hold at once: a quarter of them (at least one).
fn resend_runners(concurrency: usize) -> usize {
    (concurrency / 4).max(1)
}

/// The resends waiting their turn.
#[derive(Default)]
struct Resends {
    /// Delivery ids, oldest first.
    queue: std::collections::VecDeque<String>,
    /// Ids queued or being resent: one asked for again meanwhile is not resent twice.
    pending: HashSet<String>,
    /// Tasks working through `queue` (at most [`resend_runners`]).
    runners: usize,
}

impl Workers {
    /// `concurrency`: how many attempts run at once (a slow receiver holds one slot, not all).
    pub fn new(
        engine: Hookline,
        flow: Arc<dyn FlowStore>,
        inbox: Inbox,
        concurrency: usize,
    ) -> Self {
        let concurrency = concurrency.max(1);
        let back = Back(inbox.1.clone());
        let dests = inbox.2.clone();
        Workers {
            engine,
            flow,
            inbox,
            slots: Arc::new(Semaphore::new(concurrency)),
            concurrency,
            timers: Arc::default(),
            stopping: Arc::default(),
            backfilling: Arc::default(),
            dests,
            dest_concurrency: DEFAULT_CONCURRENCY,
            turn: 0,
            back,
            resends: Arc::default(),
        }
    }

    /// Lets at most `concurrency` attempts be in flight toward one destination (SPEC §6a,
    /// `HOOKLINE_DESTINATION_CONCURRENCY`; default 8).
    pub fn with_destination_concurrency(mut self, concurrency: u32) -> Self {
        self.dest_concurrency = concurrency.max(1);
        self
    }

    /// Runs until `shutdown` turns true, then waits for the work in flight.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let clock = self.engine.ports.clock.clone();
        let mut next_scan = tokio::time::Instant::now();
        let mut next_sweep = tokio::time::Instant::now();
        loop {
            if *shutdown.borrow() {
                break;
            }
            let now = clock.now();
            if tokio::time::Instant::now() >= next_scan {
                self.scan(now).await;
                next_scan = tokio::time::Instant::now() + SCAN_EVERY;
            }
            let due = self.lock().pop_due(now);
            for key in due {
                self.start(key, None);
            }
            if tokio::time::Instant::now() >= next_sweep {
                self.sweep(now);
                next_sweep = tokio::time::Instant::now() + SWEEP_EVERY;
            }
            self.pump();
            let first = self.lock().due.first();
            let mut wake = next_scan;
            if let Some(at) = self.dests.lock().wake(now, self.dest_concurrency) {
                let wait = at
                    .duration_since(clock.now())
                    .try_into()
                    .unwrap_or(Duration::ZERO);
                wake = wake.min(tokio::time::Instant::now() + wait);
            }
            if self.dests.lock().held > 0 {
                // held first attempts move their contacts on after a while: look again soon
                wake = wake.min(tokio::time::Instant::now() + SWEEP_EVERY);
            }
            if let Some(at) = first {
                let wait = at
                    .duration_since(clock.now())
                    .try_into()
                    .unwrap_or(Duration::ZERO); // overdue: now
                // a timer never fires early: wake at (or just after) its time
                wake = wake.min(tokio::time::Instant::now() + wait);
            }
            tokio::select! {
                biased;
                work = self.inbox.0.recv() => match work {
                    Some(work) => {
                        self.take(work);
                        // everything handed over so far, before any timer fires again
                        while let Ok(work) = self.inbox.0.try_recv() {
                            self.take(work);
                        }
                    }
                    None => break,
                },
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        break; // the sender is gone: stop
                    }
                }
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        // Graceful: let the work in flight finish (each attempt is bounded by its timeout).
        let _ = tokio::time::timeout(DRAIN, self.slots.acquire_many(self.concurrency as u32)).await;
        Ok(())
    }

    fn take(&mut self, work: Work) {
        match work {
            Work::Now(delivery) => {
                let key = WorkKey::Delivery(delivery.id.clone());
                self.lock().cancel(&key);
                self.start(key, Some(delivery));
            }
            Work::Due(work) => self.lock().set(work.key(), work.at()),
            Work::Resend(ids) => self.resend(ids),
            Work::Ready(held, limit) => {
                let dest = (held.delivery.account, held.delivery.url.clone());
                let mut dests = self.dests.lock();
                if dests.held >= MAX_WAITING {
                    drop(dests);
                    // left to the rows: a scan finds it again when the destinations catch up
                    self.lock().abandon(&held.key);
                    return;
                }
                dests.hold(dest, *held, limit);
                drop(dests);
                self.pump();
            }
            Work::Done(done) => self.done(*done),
            Work::SlotFree => self.pump(),
        }
    }

    /// Resends wait their turn in one queue, worked through by at most a quarter of the slots
    /// ([`resend_runners`]): first attempts, retries and ends of waits keep the rest, however
    /// many resends are asked for. A delivery queued or being resent is not queued again. They
    /// are not rows with a due time: a resend asked for just before a crash is not made (ask
    /// again).
    fn resend(&self, ids: Vec<String>) {
        let start = {
            let mut r = self.resends.lock().unwrap_or_else(|e| e.into_inner());
            for id in ids {
                if r.queue.len() >= MAX_RESENDS {
                    tracing::warn!(delivery_id = %id, "too many resends waiting: not queued (ask again)");
                    continue;
                }
                if r.pending.insert(id.clone()) {
                    r.queue.push_back(id);
                }
            }
            let more = resend_runners(self.concurrency)
                .min(r.queue.len())
                .saturating_sub(r.runners);
            r.runners += more;
            more
        };
        for _ in 0..start {
            let (engine, slots) = (self.engine.clone(), self.slots.clone());
            let (resends, stopping) = (self.resends.clone(), self.stopping.clone());
            tokio::spawn(async move {
                let lock = || resends.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    let Some(id) = lock().queue.pop_front() else {
                        lock().runners -= 1;
                        return;
                    };
                    let slot = slots.clone().acquire_owned().await;
                    if slot.is_err() || stopping.load(std::sync::atomic::Ordering::SeqCst) {
                        let mut r = lock();
                        r.pending.remove(&id);
                        r.runners -= 1;
                        return;
                    }
                    if let Err(e) = engine.resend_stored(std::slice::from_ref(&id)).await {
                        tracing::warn!(delivery_id = %id, error = %e, "a resend failed");
                    }
                    drop(slot);
                    lock().pending.remove(&id);
                }
            });
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Timers> {
        self.timers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets timers for what the rows say falls due soon.
    async fn scan(&self, now: Timestamp) {
        let until = now.checked_add(HORIZON).unwrap_or(now);
        match self.flow.due(until, SCAN_LIMIT).await {
            Ok(found) => {
                let mut timers = self.lock();
                for work in found {
                    let key = work.key();
                    // an occurrence firing now: its row goes in that very firing's commit (a
                    // scan that read it just before would only make a replay)
                    if matches!(key, WorkKey::Occurrence(_)) && timers.running.contains(&key) {
                        continue;
                    }
                    timers.set(key, work.at());
                }
            }
            Err(e) => tracing::error!(error = %e, "looking for due work failed"),
        }
        self.backfill();
    }

    /// Runs the unfinished backfills (activations of time-based scenarios), one page at a time
    /// with its progress stored after each, in a task of their own: the API and the timers go
    /// on meanwhile, and a restart goes on from the last page stored.
    fn backfill(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        if self.backfilling.swap(true, SeqCst) {
            return;
        }
        let (engine, flow, running, stopping) = (
            self.engine.clone(),
            self.flow.clone(),
            self.backfilling.clone(),
            self.stopping.clone(),
        );
        tokio::spawn(async move {
            let result: anyhow::Result<()> = async {
                for mut backfill in flow.backfills().await? {
                    loop {
                        if stopping.load(SeqCst) {
                            return Ok(());
                        }
                        let next = engine.backfill_page(&backfill).await?;
                        flow.backfill_done_until(&backfill.scenario_id, next.as_deref())
                            .await?;
                        match next {
                            Some(cursor) => backfill.cursor = Some(cursor),
                            None => break,
                        }
                        tokio::task::yield_now().await;
                    }
                    tracing::info!(scenario_id = %backfill.scenario_id, "backfill finished");
                }
                Ok(())
            }
            .await;
            if let Err(e) = result {
                tracing::warn!(error = %e, "a backfill page failed; it goes on at the next scan");
            }
            running.store(false, SeqCst);
        });
    }

    /// Runs one piece of work, unless it is running already: a delivery goes to its
    /// destination first ([`Self::resolve`]); a wait or an occurrence runs in a slot. A
    /// delivery handed over in memory is attempted as it is; otherwise its row is read first.
    fn start(&self, key: WorkKey, delivery: Option<Box<Delivery>>) {
        {
            let mut timers = self.lock();
            if delivery.is_some() && timers.finished_lately(&key) {
                return; // a timer attempted it from its row already
            }
            if delivery.is_some() && timers.running.waiting >= MAX_WAITING {
                return; // left to the rows: a scan finds it when slots free up
            }
            if !timers.start(&key) {
                return;
            }
        }
        if let WorkKey::Delivery(_) = key {
            self.resolve(key, delivery, false);
            return;
        }
        let (engine, slots, timers, stopping, back) = (
            self.engine.clone(),
            self.slots.clone(),
            self.timers.clone(),
            self.stopping.clone(),
            self.back.clone(),
        );
        tokio::spawn(async move {
            let slot = slots.acquire_owned().await;
            lock_timers(&timers).slotted();
            if slot.is_err() || stopping.load(std::sync::atomic::Ordering::SeqCst) {
                // stopping: no new work; the row stays due for the next start
                lock_timers(&timers).abandon(&key);
                return;
            }
            let result = match &key {
                WorkKey::Wait(id) => engine.resume(id).await,
                WorkKey::Occurrence(o) => match engine.fire(o).await {
                    // not yet (a timer never fires early, but the clock may disagree): again then
                    Ok(Outcome::RetryAt(at)) => {
                        lock_timers(&timers).rearm(key.clone(), at);
                        Ok(())
                    }
                    other => other.map(drop),
                },
                WorkKey::Delivery(_) => Ok(()), // resolved above
            };
            drop(slot);
            back.send(Work::SlotFree);
            finished(&timers, key, result, engine.ports.clock.now());
        });
    }
}

fn lock_timers(timers: &Mutex<Timers>) -> std::sync::MutexGuard<'_, Timers> {
    timers.lock().unwrap_or_else(|e| e.into_inner())
}

/// Work ended: its timer may be set again (its next retry), and work that failed (a store
/// error; the row is unchanged) runs again after a pause.
fn finished(timers: &Mutex<Timers>, key: WorkKey, result: anyhow::Result<()>, now: Timestamp) {
    let mut timers = lock_timers(timers);
    timers.finish(key.clone());
    match result {
        Ok(()) => {
            timers.succeeded(&key);
        }
        Err(e) => {
            tracing::warn!(work = ?key, error = %e, "work failed; will retry");
            timers.hold(key, now);
        }
    }
}

#[cfg(test)]
mod tests;
