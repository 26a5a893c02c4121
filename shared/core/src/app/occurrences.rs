//! Time-based triggers (SPEC §3): occurrences scheduled from snapshots, fired once each, the
//! backfill of a scenario that becomes active, and the sweep the AWS tick runs.
//!
//! - **Scheduling.** A stored snapshot replaces the contact's pending occurrence of every
//!   active time-based scenario of its account ([`TimeRule::pending`]): locally in the very
//!   commit that stores the snapshot; on the queued path (AWS) right after the conditional put,
//!   cancelling the occurrence the previous snapshot implied.
//! - **Firing** ([`Hookline::fire`]) re-reads the scenario and the contact and checks that the
//!   contact's date still gives this occurrence (a moved date or an archived scenario fires
//!   nothing), enrolls the contact under an event id derived from (scenario, contact, date) —
//!   so a repeated firing is a replay — then schedules the next year's (yearly) and removes
//!   the fired one. A snapshot stored later the same day plans the fired occurrence again (a
//!   rolling 24 hours finds it): firing it again is a replay that enrolls nobody and puts the
//!   next year's back (locally that snapshot's commit replaced it; the queued path never
//!   cancels an occurrence the new snapshot still implies).
//! - **Where they wait.** Local mode: SQLite rows, fired by the workers' timers. AWS: items
//!   under their minute, swept by a one-minute tick ([`Hookline::sweep`]) that queues them with
//!   their remaining delay; one due within [`NEAR`] of being known goes to the queue at once
//!   (its minute may have been swept already).

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use super::cache::Loaded;
use super::inline::hand_over_intake;
use super::{Hookline, Outcome};
use crate::domain::contact::Contact;
use crate::domain::scenario::ScenarioStatus;
use crate::domain::time::add;
use crate::domain::trigger::TIME_TRIGGERS;
use crate::ports::{
    Backfill, IntakeCommit, Pipeline, Queue, Scheduled, SweepState, Task, minute_of,
};

/// On the queued path, an occurrence due this soon is queued with its delay instead of being
/// indexed under its minute: a tick sweeps up to the minute after its own, so a minute may be
/// swept up to 2 minutes before it starts; 4 minutes leave one more of margin.
pub const NEAR: Duration = Duration::from_secs(240);
/// Contacts read per backfill page.
pub const BACKFILL_PAGE: usize = 1_000;
/// How long after an activation (queued path) its backfill starts: the message is sent before
/// the activation is stored, and must find it stored.
pub const BACKFILL_DELAY: Duration = Duration::from_secs(10);
/// Occurrences per fire task (one queue message).
pub const FIRE_CHUNK: usize = 25;
/// Most minutes one sweep walks (the next tick goes on where it stopped).
pub const SWEEP_MINUTES: i64 = 240;
/// Occurrences read per page of a minute.
pub const SWEEP_PAGE: usize = 1_000;
/// How long one sweep goes on (the tick's function times out at 30 s); its progress is stored
/// after every page, so the next tick goes on from there.
pub const SWEEP_BUDGET: Duration = Duration::from_secs(20);

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Minutes swept to the end.
    pub minutes: i64,
    /// Occurrences queued.
    pub occurrences: usize,
}

impl Hookline {
    /// The active time-based scenarios of an account (one read: a store keeps them together).
    async fn time_scenarios(&self, account: i64) -> anyhow::Result<Vec<Arc<Loaded>>> {
        let active = self.active_scenarios(account, TIME_TRIGGERS).await?;
        Ok(active
            .iter()
            .filter(|s| s.rule.is_some())
            .cloned()
            .collect())
    }

    /// For a snapshot becoming known at `now`: the account's time-based scenarios and the
    /// pending occurrence of each for this contact (none when it has no such date).
    pub(crate) async fn plan_occurrences(
        &self,
        account: i64,
        contact: &Contact,
        now: Timestamp,
    ) -> anyhow::Result<(Vec<String>, Vec<Scheduled>)> {
        let mut ids = Vec::new();
        let mut occurrences = Vec::new();
        for s in self.time_scenarios(account).await? {
            ids.push(s.record.id.clone());
            if let Some(o) = s
                .rule
                .as_ref()
                .and_then(|r| r.pending(&contact.snapshot, now))
            {
                occurrences.push(Scheduled::new(account, &s.record.id, contact.id, o));
            }
        }
        Ok((ids, occurrences))
    }

    /// The queued path, after a snapshot was stored over `previous`: cancels the occurrences
    /// the previous snapshot implied when the new one implies others, and places the new ones —
    /// always, even unchanged: putting one is idempotent, and an intake that stored its snapshot
    /// but failed before placing (retried after another event came in) must not leave the
    /// date unscheduled for good.
    pub(crate) async fn reschedule(
        &self,
        account: i64,
        previous: Option<&Contact>,
        contact: &Contact,
        now: Timestamp,
    ) -> anyhow::Result<()> {
        let (mut cancel, mut place) = (Vec::new(), Vec::new());
        for s in self.time_scenarios(account).await? {
            let Some(rule) = &s.rule else { continue };
            let new = rule.pending(&contact.snapshot, now);
            let old = previous.and_then(|p| rule.pending(&p.snapshot, now));
            let id = &s.record.id;
            if old != new
                && let Some(o) = old
            {
                cancel.push(Scheduled::new(account, id, contact.id, o));
            }
            if let Some(o) = new {
                place.push(Scheduled::new(account, id, contact.id, o));
            }
        }
        if !cancel.is_empty() {
            self.ports.occurrences.cancel(&cancel).await?;
        }
        self.place(place, now).await
    }

    /// Stores occurrences to fire. Queued path: those due within [`NEAR`] go to the queue.
    async fn place(&self, items: Vec<Scheduled>, now: Timestamp) -> anyhow::Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        match &self.ports.pipeline {
            Pipeline::Inline { .. } => self.ports.occurrences.schedule(&items).await,
            Pipeline::Queued(queue) => {
                let horizon = add(now, NEAR);
                let (near, far): (Vec<_>, Vec<_>) =
                    items.into_iter().partition(|o| o.at <= horizon);
                if !far.is_empty() {
                    self.ports.occurrences.schedule(&far).await?;
                }
                enqueue_fires(queue.as_ref(), near).await
            }
        }
    }

    /// Fires one occurrence (at most once: its event id is claimed), then schedules the next
    /// one (yearly) and removes it. Not before its time: then [`Outcome::RetryAt`].
    pub async fn fire(&self, item: &Scheduled) -> anyhow::Result<Outcome> {
        if item.at > self.ports.clock.now() {
            return Ok(Outcome::RetryAt(item.at));
        }
        let scenario = self
            .loaded_scenario(item.account, &item.scenario_id)
            .await?;
        self.fire_with(item, scenario).await
    }

    /// [`Hookline::fire`] with its scenario read (`None`: it does not exist).
    async fn fire_with(
        &self,
        item: &Scheduled,
        scenario: Option<Arc<Loaded>>,
    ) -> anyhow::Result<Outcome> {
        let p = &self.ports;
        let now = p.clock.now();
        if item.at > now {
            return Ok(Outcome::RetryAt(item.at));
        }
        let scenario = scenario.filter(|s| s.record.status == ScenarioStatus::Active);
        let contact = match &scenario {
            Some(_) => p.contacts.get(item.account, item.contact_id).await?,
            None => None,
        };
        let (Some(scenario), Some(contact)) = (scenario, contact) else {
            p.occurrences.cancel(std::slice::from_ref(item)).await?;
            return Ok(Outcome::Done); // archived, or the contact is gone
        };
        let Some(rule) = &scenario.rule else {
            p.occurrences.cancel(std::slice::from_ref(item)).await?;
            return Ok(Outcome::Done);
        };
        // Still this contact's occurrence? (a snapshot may have moved the date meanwhile)
        let current = rule
            .date_of(&contact.snapshot)
            .and_then(|base| rule.occurrence_on(base, item.date));
        let Some(current) = current else {
            p.occurrences.cancel(std::slice::from_ref(item)).await?;
            return Ok(Outcome::Done);
        };
        if current.at > now {
            // same date, a later instant (the time zone database changed since it was
            // scheduled): it waits for its new time
            let moved = Scheduled::new(item.account, &item.scenario_id, item.contact_id, current);
            self.place(vec![moved], now).await?;
            p.occurrences.cancel(std::slice::from_ref(item)).await?;
            return Ok(Outcome::Done);
        }
        let event_id = item.event_id();
        let next = rule
            .after_fired(&contact.snapshot, &item.occurrence())
            .map(|o| Scheduled::new(item.account, &item.scenario_id, item.contact_id, o));
        match &p.pipeline {
            Pipeline::Inline { flow, dispatch } => {
                // one commit: the enrollment (claiming the event id), the row retired, the next
                let enrollments = self
                    .plan_enrollment(&scenario, &contact, now)?
                    .into_iter()
                    .collect();
                let done = flow
                    .commit_intake(&IntakeCommit {
                        account: item.account,
                        event_id,
                        contact: contact.clone(),
                        store_contact: false,
                        occurred_at: now,
                        enrollments,
                        time_scenarios: Vec::new(),
                        occurrences: next.into_iter().collect(),
                        fired: Some(item.clone()),
                    })
                    .await?;
                hand_over_intake(dispatch.as_ref(), done.deliveries, done.waits);
            }
            Pipeline::Queued(_) => {
                // keyed writes, each safe to repeat: enroll, schedule the next, retire this one
                self.enroll_queued(&event_id, scenario.record.clone(), &contact, now)
                    .await?;
                self.place(next.into_iter().collect(), now).await?;
                p.occurrences.cancel(std::slice::from_ref(item)).await?;
            }
        }
        Ok(Outcome::Done)
    }

    /// Fires several occurrences at once, each scenario read once (a fire task's occurrences
    /// are usually one scenario's); the latest time one is not yet due at, if any.
    pub async fn fire_all(&self, items: &[Scheduled]) -> anyhow::Result<Outcome> {
        let mut scenarios: std::collections::HashMap<(i64, &str), Option<Arc<Loaded>>> =
            Default::default();
        for item in items {
            let key = (item.account, item.scenario_id.as_str());
            if !scenarios.contains_key(&key) {
                let loaded = self.loaded_scenario(key.0, key.1).await?;
                scenarios.insert(key, loaded);
            }
        }
        let results = futures::future::join_all(items.iter().map(|i| {
            let scenario = scenarios
                .get(&(i.account, i.scenario_id.as_str()))
                .cloned()
                .flatten();
            self.fire_with(i, scenario)
        }))
        .await;
        let mut outcome = Outcome::Done;
        for result in results {
            if let Outcome::RetryAt(at) = result? {
                outcome = match outcome {
                    Outcome::RetryAt(other) if other >= at => outcome,
                    _ => Outcome::RetryAt(at),
                };
            }
        }
        Ok(outcome)
    }

    /// One page of a backfill: schedules the pending occurrence of each contact of the page
    /// (SPEC §3: an activation considers every stored contact). The next cursor, or `None`
    /// when done (or when the scenario is no longer active).
    pub async fn backfill_page(&self, backfill: &Backfill) -> anyhow::Result<Option<String>> {
        let Some(scenario) = self
            .loaded_scenario(backfill.account, &backfill.scenario_id)
            .await?
            .filter(|s| s.record.status == ScenarioStatus::Active)
        else {
            return Ok(None);
        };
        let Some(rule) = &scenario.rule else {
            return Ok(None);
        };
        let page = self
            .ports
            .contacts
            .page(backfill.account, backfill.cursor.as_deref(), BACKFILL_PAGE)
            .await?;
        let now = self.ports.clock.now();
        let items = page
            .items
            .iter()
            .filter_map(|c| {
                rule.pending(&c.snapshot, now)
                    .map(|o| Scheduled::new(backfill.account, &backfill.scenario_id, c.id, o))
            })
            .collect();
        self.place(items, now).await?;
        Ok(page.next_cursor)
    }

    /// The queued path's backfill task: one page, then the next page as a new task.
    pub(crate) async fn backfill_task(&self, backfill: Backfill) -> anyhow::Result<Outcome> {
        if let Some(cursor) = self.backfill_page(&backfill).await? {
            let next = Task::BackfillV1 {
                account: backfill.account,
                scenario_id: backfill.scenario_id,
                cursor: Some(cursor),
            };
            self.queue()?.enqueue(&next, self.ports.clock.now()).await?;
        }
        Ok(Outcome::Done)
    }

    /// Queues the backfill of a scenario about to become active (queued path; local mode's
    /// store starts it in the activation's own transaction). Sent *before* the activation is
    /// stored, due [`BACKFILL_DELAY`] later: a crash between the two leaves a message that finds
    /// the scenario still a draft and does nothing, never an active scenario without its
    /// backfill.
    pub(crate) async fn queue_backfill(
        &self,
        account: i64,
        scenario_id: &str,
    ) -> anyhow::Result<()> {
        if let Pipeline::Queued(queue) = &self.ports.pipeline {
            let task = Task::BackfillV1 {
                account,
                scenario_id: scenario_id.to_string(),
                cursor: None,
            };
            queue
                .enqueue(&task, add(self.ports.clock.now(), BACKFILL_DELAY))
                .await?;
        }
        Ok(())
    }

    /// The tick (AWS, every minute): every minute since the last one swept, up to the minute
    /// after this one, is read page by page and queued as fire tasks, each delayed to its time
    /// (so an occurrence fires at its second, not when the tick of its minute happens to run).
    /// A late, repeated or lost tick catches up (at most [`SWEEP_MINUTES`] and [`SWEEP_BUDGET`]
    /// a call, progress stored after each page); a page swept twice queues its occurrences
    /// again, and they fire once.
    pub async fn sweep(&self) -> anyhow::Result<Swept> {
        self.sweep_within(SWEEP_BUDGET, SWEEP_PAGE).await
    }

    /// [`Hookline::sweep`] with another time budget and page size (tests).
    pub async fn sweep_within(&self, budget: Duration, page: usize) -> anyhow::Result<Swept> {
        let started = std::time::Instant::now();
        let queue = self.queue()?;
        let p = &self.ports;
        let current = minute_of(p.clock.now());
        let state = p.occurrences.swept().await?.unwrap_or(SweepState {
            minute: current - 1, // the first tick ever starts at its own minute
            cursor: None,
        });
        let (mut minute, mut cursor) = (state.minute + 1, state.cursor);
        let last = (current + 1).min(state.minute + SWEEP_MINUTES);
        let mut swept = Swept::default();
        while minute <= last && started.elapsed() < budget {
            let found = p
                .occurrences
                .in_minute(minute, cursor.as_deref(), page)
                .await?;
            swept.occurrences += found.items.len();
            enqueue_fires(queue, found.items).await?;
            cursor = found.next_cursor;
            let progress = match &cursor {
                Some(_) => SweepState {
                    minute: minute - 1,
                    cursor: cursor.clone(),
                },
                None => SweepState {
                    minute,
                    cursor: None,
                },
            };
            p.occurrences.set_swept(&progress).await?;
            if cursor.is_none() {
                swept.minutes += 1;
                minute += 1;
            }
        }
        Ok(swept)
    }
}

/// Queues occurrences as fire tasks of [`FIRE_CHUNK`], in time order, each task due at its
/// latest occurrence (none fires early; occurrences fire on whole minutes, so a chunk's
/// occurrences almost always share their time), sent in batches.
async fn enqueue_fires(queue: &dyn Queue, mut items: Vec<Scheduled>) -> anyhow::Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    items.sort_by_key(|o| o.at);
    let tasks: Vec<(Task, Timestamp)> = items
        .chunks(FIRE_CHUNK)
        .map(|chunk| {
            let due = chunk
                .iter()
                .map(|o| o.at)
                .max()
                .unwrap_or_else(Timestamp::now);
            let task = Task::FireV1 {
                items: chunk.to_vec(),
            };
            (task, due)
        })
        .collect();
    queue.enqueue_many(&tasks).await
}
