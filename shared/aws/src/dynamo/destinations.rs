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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;
use hookline_core::domain::destination::{
    Answer, Destination, FAILURES_TO_FAIL, Health, PROBE_FIRST, destination_id,
};
use hookline_core::domain::time::add;
use hookline_core::ports::{
    Clock, DestinationBoard, DestinationGate, DestinationState, Gate, StoreResult,
};
use jiff::Timestamp;
use tokio::sync::Notify;

use super::*;

/// How long a destination's state read is trusted.
pub const CACHE_TTL: Duration = Duration::from_millis(1_000);
/// A hold decided on a read older than this reads again first (a pause or a circuit may have
/// ended since).
const HOLD_REFRESH: Duration = Duration::from_millis(250);
/// How long an attempt waits in-process for a free slot of its destination before it is held
/// back (queued again) instead.
pub const SLOT_WAIT: Duration = Duration::from_secs(5);
/// A start the pace gives within this is waited in-process (by the caller: [`Gate::Go`]'s
/// `at`); a later one is reserved and the delivery queued again for it.
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

impl DynamoDestinations {
    /// `concurrency` per destination over `instances` concurrent instances at most.
    pub fn new(
        store: DynamoStore,
        clock: Arc<dyn Clock>,
        concurrency: u32,
        instances: u32,
    ) -> Self {
        DynamoDestinations {
            store,
            clock,
            share: (concurrency / instances.max(1)).max(1),
            kept: Arc::default(),
            freed: Arc::new(Notify::new()),
        }
    }

    /// Attempts in flight per destination from one instance.
    pub fn share(&self) -> u32 {
        self.share
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Kept>> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn item_key(account: i64, url: &str) -> Item {
        key(format!("DST#{account}"), &destination_id(account, url))
    }

    /// The item's parts: state, version, failures in a row.
    fn parse(item: &Item) -> anyhow::Result<(Destination, i64, u32)> {
        let state = match opt_s(item, "state") {
            Some(json) => serde_json::from_str(&json).context("a destination's state")?,
            None => Destination::default(),
        };
        let ver = opt_n(item, "ver").unwrap_or(0);
        let fails = opt_n(item, "fails").unwrap_or(0).max(0) as u32;
        Ok((state, ver, fails))
    }

    /// Takes a read (or a write's answer) into the cache.
    fn take(&self, k: &Key, parts: Option<(Destination, i64, u32)>) {
        let mut kept = self.lock();
        let entry = kept.entry(k.clone()).or_default();
        let (state, ver, fails) = parts.unwrap_or_default();
        adopt(&mut entry.state, state);
        entry.ver = ver;
        entry.fails = fails;
        entry.read_at = Some(Instant::now());
    }

    /// The destination's state, read again when the copy held is older than `max_age`.
    async fn view(&self, k: &Key, max_age: Duration, consistent: bool) -> StoreResult<Kept> {
        let fresh = self
            .lock()
            .get(k)
            .and_then(|e| e.read_at)
            .is_some_and(|at| at.elapsed() < max_age);
        if !fresh {
            let out = self
                .store
                .client
                .get_item()
                .table_name(&self.store.table)
                .set_key(Some(Self::item_key(k.0, &k.1)))
                .consistent_read(consistent)
                .send()
                .await
                .context("DynamoDB GetItem destination")?;
            let parts = out.item.as_ref().map(Self::parse).transpose()?;
            self.take(k, parts);
            let tat = out.item.as_ref().and_then(|i| opt_n(i, "tat"));
            if let Some(e) = self.lock().get_mut(k) {
                e.tat = tat;
            }
        }
        let kept = self.lock();
        let e = kept.get(k).map_or_else(Kept::default, |e| Kept {
            state: e.state.clone(),
            ver: e.ver,
            fails: e.fails,
            read_at: e.read_at,
            in_flight: e.in_flight,
            probing: e.probing,
            accepted: e.accepted.clone(),
            tat: e.tat,
            flushed_at: e.flushed_at,
        });
        Ok(e)
    }

    /// Writes `state` if the item is still at `ver` (`reset_fails`: failures in a row back to
    /// 0); `false` when another instance wrote first.
    async fn write(
        &self,
        k: &Key,
        state: &Destination,
        ver: i64,
        reset_fails: bool,
    ) -> StoreResult<bool> {
        let mut shared = state.clone();
        shared.in_flight = 0;
        let mut set = "SET #url = :url, #state = :state, ver = :new, expires_at = :exp".to_string();
        let mut update = self
            .store
            .client
            .update_item()
            .table_name(&self.store.table)
            .set_key(Some(Self::item_key(k.0, &k.1)))
            .expression_attribute_names("#url", "url")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":url", s(&k.1))
            .expression_attribute_values(":state", s(serde_json::to_string(&shared)?))
            .expression_attribute_values(":new", n(ver + 1))
            .expression_attribute_values(":exp", ttl(ITEM_DAYS))
            .expression_attribute_values(":old", n(ver))
            .condition_expression("attribute_not_exists(ver) OR ver = :old");
        if reset_fails {
            set.push_str(", fails = :zero");
            update = update.expression_attribute_values(":zero", n(0));
        }
        match update.update_expression(set).send().await {
            Ok(_) => {
                let fails = if reset_fails {
                    0
                } else {
                    self.lock().get(k).map_or(0, |e| e.fails)
                };
                self.take(k, Some((shared, ver + 1, fails)));
                if let Some(e) = self.lock().get_mut(k) {
                    e.accepted.clear();
                }
                Ok(true)
            }
            Err(e) if is_conditional(&e) => Ok(false),
            Err(e) => Err(anyhow::Error::from(e).context("DynamoDB UpdateItem destination")),
        }
    }

    /// Applies `change` to the destination's state and writes it (compare-and-set, read again
    /// on a conflict). `change` answers whether there is anything to write.
    async fn transition(
        &self,
        k: &Key,
        reset_fails: bool,
        mut change: impl FnMut(&mut Destination, &Kept) -> bool,
    ) -> StoreResult<()> {
        let mut max_age = CACHE_TTL;
        for _ in 0..TRIES {
            let kept = self.view(k, max_age, true).await?;
            let mut state = kept.state.clone();
            if !change(&mut state, &kept) {
                return Ok(());
            }
            if self.write(k, &state, kept.ver, reset_fails).await? {
                return Ok(());
            }
            max_age = Duration::ZERO;
        }
        anyhow::bail!("destination {}: too many conflicting writes", k.1)
    }

    /// Takes a slot of this instance for the destination.
    fn take_slot(&self, k: &Key, probe: bool) {
        let mut kept = self.lock();
        let e = kept.entry(k.clone()).or_default();
        e.in_flight += 1;
        e.probing |= probe;
    }

    /// Claims the next start at `pace` (GCRA: the item's `tat` is the earliest start not yet
    /// claimed). An idle destination (`tat` in the past, or none) is claimed with one
    /// conditional write that moves `tat` to an interval from now (start now); a busy one
    /// with one atomic `ADD` of the interval, so that instances claiming at once never
    /// conflict (each `ADD` answers its own start). `None` (nothing claimed) when the next
    /// start would be past `deadline`.
    async fn claim(
        &self,
        k: &Key,
        pace: f64,
        now: Timestamp,
        deadline: Timestamp,
    ) -> StoreResult<Option<Timestamp>> {
        let interval = ((1000.0 / pace).round() as i64).max(1);
        let tat = self.lock().get(k).and_then(|e| e.tat).unwrap_or(0);
        if tat.max(now.as_millisecond()) > deadline.as_millisecond() {
            return Ok(None);
        }
        let mut idle = tat <= now.as_millisecond();
        for _ in 0..TRIES {
            let now_ms = self.clock.now().as_millisecond();
            if idle {
                let started = self
                    .store
                    .client
                    .update_item()
                    .table_name(&self.store.table)
                    .set_key(Some(Self::item_key(k.0, &k.1)))
                    .update_expression("SET #url = :url, expires_at = :exp, tat = :next")
                    .condition_expression("attribute_not_exists(tat) OR tat <= :now")
                    .expression_attribute_names("#url", "url")
                    .expression_attribute_values(":url", s(&k.1))
                    .expression_attribute_values(":exp", ttl(ITEM_DAYS))
                    .expression_attribute_values(":next", n(now_ms + interval))
                    .expression_attribute_values(":now", n(now_ms))
                    .send()
                    .await;
                match started {
                    Ok(_) => {
                        if let Some(e) = self.lock().get_mut(k) {
                            e.tat = Some(now_ms + interval);
                        }
                        return Ok(Some(Timestamp::from_millisecond(now_ms)?));
                    }
                    Err(e) if is_conditional(&e) => {} // busy: claimed by another meanwhile
                    Err(e) => {
                        return Err(
                            anyhow::Error::from(e).context("DynamoDB UpdateItem destination")
                        );
                    }
                }
            }
            let out = self
                .store
                .client
                .update_item()
                .table_name(&self.store.table)
                .set_key(Some(Self::item_key(k.0, &k.1)))
                .update_expression("SET #url = :url, expires_at = :exp ADD tat :iv")
                .expression_attribute_names("#url", "url")
                .expression_attribute_values(":url", s(&k.1))
                .expression_attribute_values(":exp", ttl(ITEM_DAYS))
                .expression_attribute_values(":iv", n(interval))
                .return_values(ReturnValue::UpdatedNew)
                .send()
                .await
                .context("DynamoDB UpdateItem destination claim")?;
            let tat = out
                .attributes
                .as_ref()
                .and_then(|a| opt_n(a, "tat"))
                .context("a claim without its tat")?;
            if let Some(e) = self.lock().get_mut(k) {
                e.tat = Some(tat);
            }
            if tat - interval >= self.clock.now().as_millisecond() {
                return Ok(Some(Timestamp::from_millisecond(tat - interval)?));
            }
            idle = true; // went idle since: that start is in the past, claim from now
        }
        anyhow::bail!("destination {}: too many conflicting claims", k.1)
    }

    /// Applies the attempts accepted here since the last write to `state` (the learned
    /// pace's additive increase, carried by this instance's next write).
    fn with_accepted(state: &mut Destination, kept: &Kept, now: Timestamp) {
        if state.learned.is_none() || state.failing_since.is_some() {
            return;
        }
        for started in &kept.accepted {
            state.in_flight += 1;
            state.finished(now, *started, Answer::Accepted, None);
        }
    }
}

#[async_trait]
impl DestinationBoard for DynamoDestinations {
    async fn get(&self, account: i64, url: &str) -> StoreResult<Option<DestinationState>> {
        let out = self
            .store
            .client
            .get_item()
            .table_name(&self.store.table)
            .set_key(Some(Self::item_key(account, url)))
            .send()
            .await
            .context("DynamoDB GetItem destination")?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let (mut state, _, fails) = Self::parse(&item)?;
        state.failures = fails;
        state.in_flight = self
            .lock()
            .get(&(account, url.to_string()))
            .map_or(0, |e| e.in_flight);
        Ok(Some(DestinationState {
            state,
            waiting: None,
        }))
    }

    async fn urls(&self, account: i64) -> StoreResult<Vec<String>> {
        let items = self.store.query_all(format!("DST#{account}"), None).await?;
        Ok(items.iter().filter_map(|i| opt_s(i, "url")).collect())
    }

    fn gate(&self) -> Option<&dyn DestinationGate> {
        Some(self)
    }
}

#[async_trait]
impl DestinationGate for DynamoDestinations {
    async fn admit(
        &self,
        account: i64,
        url: &str,
        rate_limit: Option<f64>,
        reserved: Option<Timestamp>,
        deadline: Timestamp,
    ) -> StoreResult<Gate> {
        let k: Key = (account, url.to_string());
        let waiting_since = Instant::now();
        let mut max_age = CACHE_TTL;
        let mut tries = 0;
        loop {
            tries += 1;
            if tries > TRIES * 4 {
                anyhow::bail!("destination {url}: too many conflicting writes");
            }
            let kept = self.view(&k, max_age, max_age.is_zero()).await?;
            let mut state = kept.state.clone();
            state.configure(rate_limit);
            let now = self.clock.now();
            let age = kept.read_at.map_or(Duration::MAX, |at| at.elapsed());
            // a hold decided on an old read reads again first
            let hold = |until: Timestamp, health: Health| Gate::Wait {
                until,
                reserved: false,
                health,
            };
            if state.failing_since.is_some() {
                let probe_alive = state.probing
                    && state
                        .last_attempt_at
                        .is_some_and(|t| add(t, PROBE_STALE) > now);
                let next = state.next_probe.filter(|at| *at > now);
                if probe_alive || next.is_some() {
                    if age > HOLD_REFRESH {
                        max_age = Duration::ZERO;
                        continue;
                    }
                    let until = next.unwrap_or_else(|| add(now, PROBE_FIRST));
                    return Ok(hold(until, Health::Failing));
                }
                // this attempt is the probe
                state.probing = false;
                state.in_flight = 0;
                state.admit(now, u32::MAX);
                if self.write(&k, &state, kept.ver, false).await? {
                    self.take_slot(&k, true);
                    return Ok(Gate::Go {
                        probe: true,
                        at: now,
                    });
                }
                max_age = Duration::ZERO;
                continue;
            }
            if let Some(until) = state.paused_until
                && until > now
            {
                if age > HOLD_REFRESH {
                    max_age = Duration::ZERO;
                    continue;
                }
                return Ok(hold(until, Health::Throttled));
            }
            // (a paced destination's starts are spaced by its pace over every instance: its
            // attempts in flight are what that pace lets start, not this instance's share)
            if kept.in_flight >= self.share && now < deadline && state.pace().is_none() {
                let left = SLOT_WAIT.saturating_sub(waiting_since.elapsed());
                if left.is_zero() {
                    return Ok(hold(add(now, Duration::from_secs(1)), state.health(now)));
                }
                let freed = self.freed.notified();
                let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), freed).await;
                continue;
            }
            if let Some(at) = reserved
                && let Some(pace) = state.pace()
                && since(now, at) <= LATE.min(Duration::from_secs_f64(0.5 / pace))
            {
                // its start was claimed before it was queued again
                if since(at, now) > WAIT_IN_PROCESS {
                    return Ok(Gate::Wait {
                        until: at,
                        reserved: true,
                        health: Health::Throttled,
                    });
                }
                self.take_slot(&k, false);
                return Ok(Gate::Go {
                    probe: false,
                    at: at.max(now),
                });
            }
            if let Some(pace) = state.pace() {
                let Some(start) = self.claim(&k, pace, now, deadline).await? else {
                    return Ok(hold(deadline.max(now), Health::Throttled));
                };
                let wait = since(start, now);
                if wait > WAIT_IN_PROCESS {
                    return Ok(Gate::Wait {
                        until: start,
                        reserved: true,
                        health: Health::Throttled,
                    });
                }
                self.take_slot(&k, false);
                return Ok(Gate::Go {
                    probe: false,
                    at: start.max(now),
                });
            }
            self.take_slot(&k, false);
            return Ok(Gate::Go {
                probe: false,
                at: now,
            });
        }
    }

    async fn finished(
        &self,
        account: i64,
        url: &str,
        started: Timestamp,
        answer: Answer,
        error: Option<&str>,
    ) -> StoreResult<()> {
        let k: Key = (account, url.to_string());
        let (probe, kept_state, fails) = {
            let mut kept = self.lock();
            let e = kept.entry(k.clone()).or_default();
            e.in_flight = e.in_flight.saturating_sub(1);
            let probe = std::mem::take(&mut e.probing);
            let before = e.state.clone();
            if answer == Answer::Accepted && before.failing_since.is_none() {
                if before.learned.is_some() {
                    e.accepted.push(started); // carried by this instance's next write
                }
                // this instance's own record of what it saw accepted (a refusal learns a
                // pace from it); the shared fields stay as read
                e.state.in_flight += 1;
                e.state.finished(self.clock.now(), started, answer, None);
                e.state.learned = before.learned;
                e.state.next_pause = before.next_pause;
                e.state.refused_at = before.refused_at;
                e.state.next_start = before.next_start;
                e.state.paused_until = before.paused_until;
            }
            (probe, before, e.fails)
        };
        self.freed.notify_waiters();
        let now = self.clock.now();
        match answer {
            // no request was made (a payload past its bound): nothing learned
            Answer::NotSent => Ok(()),
            Answer::Accepted | Answer::Declined => {
                if probe || kept_state.failing_since.is_some() {
                    // healing: the first answered probe (or an attempt begun before) lets all go
                    return self
                        .transition(&k, true, |state, _| {
                            if state.failing_since.is_none() && !state.probing {
                                return false;
                            }
                            state.in_flight = 1;
                            state.finished(now, started, answer, error);
                            true
                        })
                        .await;
                }
                let flush = {
                    let kept = self.lock();
                    kept.get(&k).is_some_and(|e| {
                        !e.accepted.is_empty()
                            && e.flushed_at.is_none_or(|at| at.elapsed() >= FLUSH_EVERY)
                    })
                };
                if flush {
                    // the learned pace rises with what was accepted here (one write a second
                    // at most)
                    if let Some(e) = self.lock().get_mut(&k) {
                        e.flushed_at = Some(Instant::now());
                    }
                    self.transition(&k, false, |state, kept| {
                        if state.learned.is_none() || kept.accepted.is_empty() {
                            return false;
                        }
                        Self::with_accepted(state, kept, now);
                        true
                    })
                    .await?;
                }
                if fails > 0 {
                    self.store
                        .client
                        .update_item()
                        .table_name(&self.store.table)
                        .set_key(Some(Self::item_key(account, url)))
                        .update_expression("SET fails = :zero")
                        .condition_expression("attribute_exists(pk)")
                        .expression_attribute_values(":zero", n(0))
                        .send()
                        .await
                        .map_or_else(
                            |e| {
                                if is_conditional(&e) {
                                    Ok(())
                                } else {
                                    Err(anyhow::Error::from(e)
                                        .context("DynamoDB UpdateItem destination"))
                                }
                            },
                            |_| Ok(()),
                        )?;
                    if let Some(e) = self.lock().get_mut(&k) {
                        e.fails = 0;
                    }
                }
                Ok(())
            }
            Answer::Refused { retry_after } => {
                // paused here at once, whatever the write below meets
                if let Some(e) = self.lock().get_mut(&k) {
                    let until = add(now, retry_after.unwrap_or(e.state.next_pause));
                    e.state.paused_until =
                        Some(e.state.paused_until.map_or(until, |p| p.max(until)));
                }
                let mut resume = None;
                self.transition(&k, true, |state, kept| {
                    Self::with_accepted(state, kept, now);
                    state.in_flight = 1;
                    // an attempt started before this instance could have read a refusal
                    // written by another (its cache) belongs to the same burst: it extends
                    // the pause, and lowers the pace only once
                    let started = match state.refused_at {
                        Some(r) if add(r, CACHE_TTL) >= started => r.min(started),
                        _ => started,
                    };
                    state.finished(now, started, answer, error);
                    resume = state.paused_until;
                    true
                })
                .await?;
                // the pace starts again after the pause (starts claimed before it are void)
                if let Some(at) = resume {
                    self.store
                        .client
                        .update_item()
                        .table_name(&self.store.table)
                        .set_key(Some(Self::item_key(account, url)))
                        .update_expression("SET tat = :at")
                        .expression_attribute_values(":at", n(at.as_millisecond()))
                        .send()
                        .await
                        .context("DynamoDB UpdateItem destination")?;
                }
                Ok(())
            }
            Answer::Failed => {
                if probe {
                    // a failed probe: the next one may start at its time
                    return self
                        .transition(&k, false, |state, _| {
                            state.in_flight = 1;
                            state.finished(now, started, answer, error);
                            true
                        })
                        .await;
                }
                if kept_state.failing_since.is_some() {
                    return Ok(()); // begun before the circuit opened
                }
                let out = self
                    .store
                    .client
                    .update_item()
                    .table_name(&self.store.table)
                    .set_key(Some(Self::item_key(account, url)))
                    .update_expression("SET #url = :url, expires_at = :exp ADD fails :one")
                    .expression_attribute_names("#url", "url")
                    .expression_attribute_values(":url", s(url))
                    .expression_attribute_values(":exp", ttl(ITEM_DAYS))
                    .expression_attribute_values(":one", n(1))
                    .return_values(ReturnValue::AllNew)
                    .send()
                    .await
                    .context("DynamoDB UpdateItem destination")?;
                let parts = out.attributes.as_ref().map(Self::parse).transpose()?;
                let fails = parts.as_ref().map_or(0, |p| p.2);
                self.take(&k, parts);
                if fails < FAILURES_TO_FAIL {
                    return Ok(());
                }
                // the 5th in a row, over every instance: failing
                self.transition(&k, false, |state, _| {
                    if state.failing_since.is_some() {
                        return false;
                    }
                    state.failures = FAILURES_TO_FAIL - 1;
                    state.in_flight = 1;
                    state.finished(now, started, answer, error);
                    true
                })
                .await
            }
        }
    }
}
