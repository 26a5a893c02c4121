//! Destinations (SPEC §6a): an account's webhook URL treated as a receiver with a capacity of
//! its own. One small state machine, the same in both runtimes: given the clock, the outcomes
//! of the attempts made and the configured limit, may an attempt start now, and if not, when?
//!
//! - **Concurrency**: at most `concurrency` attempts in flight.
//! - **Pace**: the lower of the configured `rateLimit` and the learned pace; starts are spaced
//!   by `1 / pace` (so any 1-second window holds at most `pace + 1` starts).
//! - **Learned pace** (AIMD): a refusal (`429`, or `503` with `Retry-After`) pauses the whole
//!   destination for `Retry-After` (absent: 1 s, doubling up to 60 s while refusals go on), and
//!   sets the pace to a fraction of what the receiver was accepting; every accepted attempt then
//!   raises it a little (additive increase), so a burst settles near the receiver's rate.
//! - **Circuit**: 5 failed attempts in a row (connection error, timeout, 5xx) make it
//!   `failing`: one probe at a time, every 2 s for the first minute, then doubling up to
//!   5 minutes; the first probe that is answered without failing makes it healthy again.
//!
//! Nothing here does I/O: the adapters keep the state (local mode in memory; AWS in a small
//! item) and ask [`Destination::admit`] before an attempt and tell [`Destination::finished`]
//! after it.

use std::collections::VecDeque;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::delivery::AttemptOutcome;
use super::time::add;

/// Attempts in flight toward one destination, by default (`HOOKLINE_DESTINATION_CONCURRENCY`).
pub const DEFAULT_CONCURRENCY: u32 = 8;
/// Failed attempts in a row that make a destination `failing`.
pub const FAILURES_TO_FAIL: u32 = 5;
/// Probes of a failing destination: every 2 s during its first minute of failing…
pub const PROBE_FIRST: Duration = Duration::from_secs(2);
/// …for this long…
pub const PROBE_FAST_FOR: Duration = Duration::from_secs(60);
/// …then doubling up to 5 minutes.
pub const PROBE_MAX: Duration = Duration::from_secs(300);
/// A refusal without `Retry-After` pauses 1 s, doubling while refusals continue, up to 60 s.
pub const PAUSE_FIRST: Duration = Duration::from_secs(1);
/// The longest pause a refusal without `Retry-After` makes.
pub const PAUSE_MAX: Duration = Duration::from_secs(60);
/// The pace after a refusal: this fraction of what the receiver was accepting (the decrease).
pub const DECREASE: f64 = 0.85;
/// Each accepted attempt raises a learned pace by this share of it per second of acceptance
/// (the increase; at least [`MIN_INCREASE`] requests/s per second).
pub const INCREASE: f64 = 0.05;
/// The smallest increase of a learned pace, in requests/s per second of acceptance.
pub const MIN_INCREASE: f64 = 0.5;
/// The slowest pace ever set (SPEC §4's lowest `rateLimit`).
pub const MIN_PACE: f64 = 0.1;
/// The fastest configured pace (SPEC §4).
pub const MAX_PACE: f64 = 10_000.0;
/// A learned pace is forgotten after this long without a refusal (the receiver kept up).
pub const FORGET_AFTER: Duration = Duration::from_secs(60);

/// `dst_` + 16 hex digits of SHA-256 of the account and the URL: stable, and the same in both
/// runtimes (SPEC §6a).
pub fn destination_id(account: i64, url: &str) -> String {
    let mut h = Sha256::new();
    h.update(account.to_be_bytes());
    h.update(url.as_bytes());
    let digest = h.finalize();
    format!("dst_{}", hex::encode(&digest[..8]))
}

/// What a destination says of one attempt, from its outcome.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Answer {
    /// 2xx.
    Accepted,
    /// `429`, or `503` with `Retry-After`: slow down.
    Refused {
        /// The answer's `Retry-After`, when it had one.
        retry_after: Option<Duration>,
    },
    /// A connection error, a timeout or a 5xx: counts toward `failing`.
    Failed,
    /// Any other answer (3xx, 4xx): the receiver is up, but did not take it.
    Declined,
    /// No request was made (a payload past its bound): says nothing of the receiver.
    NotSent,
}

impl Answer {
    /// Classifies an attempt's outcome.
    pub fn of(outcome: &AttemptOutcome) -> Answer {
        match outcome.status {
            Some(200..=299) => Answer::Accepted,
            Some(429) => Answer::Refused {
                retry_after: outcome.retry_after,
            },
            Some(503) if outcome.retry_after.is_some() => Answer::Refused {
                retry_after: outcome.retry_after,
            },
            Some(500..=599) | None => Answer::Failed,
            Some(_) => Answer::Declined,
        }
    }
}

/// A destination's health (SPEC §6a `status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Unpaced (or at its configured pace only), answering.
    Healthy,
    /// Paused or paced by refusals.
    Throttled,
    /// Its last attempts failed: one probe at a time.
    Failing,
}

impl Health {
    /// The word in the API and the error texts.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Throttled => "throttled",
            Health::Failing => "failing",
        }
    }

    /// Parses the API's word.
    pub fn parse(s: &str) -> Option<Health> {
        match s {
            "healthy" => Some(Health::Healthy),
            "throttled" => Some(Health::Throttled),
            "failing" => Some(Health::Failing),
            _ => None,
        }
    }
}

/// May an attempt start?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Yes (and it is a probe of a failing destination when `probe`).
    Go {
        /// It is the one probe of a failing destination.
        probe: bool,
    },
    /// Not before this time (pace, pause or the next probe).
    At(Timestamp),
    /// Not until an attempt in flight finishes.
    Full,
}

/// The state of one destination. Serializable: the AWS adapter keeps it in an item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Destination {
    /// The lowest `rateLimit` of the steps that name its URL.
    pub configured: Option<f64>,
    /// The pace learned from refusals (`None`: not paced by refusals).
    pub learned: Option<f64>,
    /// The earliest time the next attempt may start at the current pace (GCRA's TAT).
    pub next_start: Option<Timestamp>,
    /// Nothing starts before this (a refusal's pause).
    pub paused_until: Option<Timestamp>,
    /// The pause the next refusal without `Retry-After` makes.
    pub next_pause: Duration,
    /// When the last refusal came.
    pub refused_at: Option<Timestamp>,
    /// Failed attempts in a row.
    pub failures: u32,
    /// Since when it is failing (`None`: not failing).
    pub failing_since: Option<Timestamp>,
    /// When the next probe of a failing destination may start.
    pub next_probe: Option<Timestamp>,
    /// A probe is in flight.
    pub probing: bool,
    /// Attempts in flight (kept by the runtime that counts them).
    pub in_flight: u32,
    /// When the last attempt started.
    pub last_attempt_at: Option<Timestamp>,
    /// The last failed or refused attempt's error, for a person.
    pub last_error: Option<String>,
    /// Start times of the attempts accepted in the last second (to learn a pace from).
    #[serde(skip)]
    accepted: VecDeque<Timestamp>,
}

impl Default for Destination {
    fn default() -> Self {
        Destination {
            configured: None,
            learned: None,
            next_start: None,
            paused_until: None,
            next_pause: PAUSE_FIRST,
            refused_at: None,
            failures: 0,
            failing_since: None,
            next_probe: None,
            probing: false,
            in_flight: 0,
            last_attempt_at: None,
            last_error: None,
            accepted: VecDeque::new(),
        }
    }
}

/// Most start times kept to learn a pace from (a pace above it is "fast enough").
const MAX_ACCEPTED_KEPT: usize = 2_048;

impl Destination {
    /// The requests per second allowed now (`None`: unpaced).
    pub fn pace(&self) -> Option<f64> {
        match (self.configured, self.learned) {
            (Some(c), Some(l)) => Some(c.min(l)),
            (c, l) => c.or(l),
        }
    }

    /// Its health at `now`.
    pub fn health(&self, now: Timestamp) -> Health {
        if self.failing_since.is_some() {
            Health::Failing
        } else if self.learned.is_some() || self.paused_until.is_some_and(|p| p > now) {
            Health::Throttled
        } else {
            Health::Healthy
        }
    }

    /// Sets the configured limit: the lowest `rateLimit` of the steps that name its URL.
    pub fn configure(&mut self, rate_limit: Option<f64>) {
        self.configured = rate_limit.map(|l| l.clamp(MIN_PACE, MAX_PACE));
    }

    /// May an attempt start at `now`, with at most `concurrency` in flight? `Go` counts it in
    /// flight and takes its place in the pace: call [`Self::finished`] once it is made.
    pub fn admit(&mut self, now: Timestamp, concurrency: u32) -> Admit {
        let at = self.allowed_at(now, concurrency);
        match at {
            Admit::Go { probe } => {
                self.in_flight += 1;
                self.probing |= probe;
                self.last_attempt_at = Some(now);
                if let Some(pace) = self.pace() {
                    let start = self.next_start.map_or(now, |n| n.max(now));
                    self.next_start = Some(add(start, Duration::from_secs_f64(1.0 / pace)));
                }
                if probe {
                    self.next_probe = Some(add(now, self.probe_interval(now)));
                }
                Admit::Go { probe }
            }
            other => other,
        }
    }

    /// What [`Self::admit`] would answer, without taking anything.
    pub fn allowed_at(&self, now: Timestamp, concurrency: u32) -> Admit {
        if self.failing_since.is_some() {
            if self.probing {
                return Admit::Full;
            }
            return match self.next_probe {
                Some(at) if at > now => Admit::At(at),
                _ => Admit::Go { probe: true },
            };
        }
        if let Some(until) = self.paused_until
            && until > now
        {
            return Admit::At(until);
        }
        if self.in_flight >= concurrency.max(1) {
            return Admit::Full;
        }
        if self.pace().is_some()
            && let Some(next) = self.next_start
            && next > now
        {
            return Admit::At(next);
        }
        Admit::Go { probe: false }
    }

    /// An attempt admitted earlier ended at `now` with `answer` (`error`: its text, kept for
    /// the health view). Returns `true` when it made a failing destination healthy again (what
    /// waits may be released).
    pub fn finished(
        &mut self,
        now: Timestamp,
        started: Timestamp,
        answer: Answer,
        error: Option<&str>,
    ) -> bool {
        if answer == Answer::NotSent {
            self.release();
            return false;
        }
        self.in_flight = self.in_flight.saturating_sub(1);
        self.probing = false;
        self.forget_old_pace(now);
        match answer {
            Answer::NotSent => false,
            Answer::Accepted | Answer::Declined => {
                self.failures = 0;
                self.next_pause = PAUSE_FIRST;
                if answer == Answer::Accepted {
                    self.accepted.push_back(started);
                    while self.accepted.len() > MAX_ACCEPTED_KEPT {
                        self.accepted.pop_front();
                    }
                    if let Some(pace) = self.learned {
                        // additive increase: per second of acceptance, INCREASE of the pace
                        let step = (INCREASE * pace).max(MIN_INCREASE) / pace;
                        self.learned = Some((pace + step).min(MAX_PACE));
                    }
                } else if let Some(e) = error {
                    self.last_error = Some(e.to_string());
                }
                if self.failing_since.take().is_some() {
                    self.next_probe = None;
                    return true;
                }
                false
            }
            Answer::Refused { retry_after } => {
                self.failures = 0;
                // only the first refusal of a pause lowers the pace and lengthens the next
                // pause: those in flight with it were sent at the same pace
                let first_of_pause = self.refused_at.is_none_or(|r| r < started);
                let pause = match retry_after {
                    Some(ra) => Some(ra.min(Duration::from_secs(3600))),
                    None if first_of_pause => {
                        let p = self.next_pause;
                        self.next_pause = (p * 2).min(PAUSE_MAX);
                        Some(p)
                    }
                    None => None, // the pause its first refusal set covers it
                };
                if let Some(pause) = pause {
                    let until = add(now, pause);
                    self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
                }
                if first_of_pause {
                    let accepting = self.accepted_in_second_before(started);
                    let base = match self.learned {
                        Some(pace) => pace.min(accepting.max(MIN_PACE) * 1.25),
                        None => accepting,
                    };
                    self.learned = Some((base * DECREASE).max(MIN_PACE));
                }
                self.refused_at = Some(now);
                self.next_start = None;
                if let Some(e) = error {
                    self.last_error = Some(e.to_string());
                }
                let healed = self.failing_since.take().is_some();
                if healed {
                    self.next_probe = None;
                }
                healed
            }
            Answer::Failed => {
                self.failures += 1;
                if let Some(e) = error {
                    self.last_error = Some(e.to_string());
                }
                if self.failing_since.is_none() && self.failures >= FAILURES_TO_FAIL {
                    self.failing_since = Some(now);
                    self.next_probe = Some(add(now, PROBE_FIRST));
                }
                // (a failed probe: the next one was set when it started)
                false
            }
        }
    }

    /// Gives back an admission that was not used (the work went elsewhere).
    pub fn release(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.probing = false;
    }

    /// How often a failing destination is probed: every 2 s in its first minute of failing,
    /// then doubling up to 5 minutes.
    fn probe_interval(&self, now: Timestamp) -> Duration {
        let Some(since) = self.failing_since else {
            return PROBE_FIRST;
        };
        let failing_for: Duration = now
            .duration_since(since)
            .try_into()
            .unwrap_or(Duration::ZERO);
        if failing_for < PROBE_FAST_FOR {
            return PROBE_FIRST;
        }
        let doublings = ((failing_for - PROBE_FAST_FOR).as_secs() / 60).min(8) as u32 + 1;
        (PROBE_FIRST * 2u32.pow(doublings)).min(PROBE_MAX)
    }

    /// How many accepted attempts started in the second before `at` (at least one).
    fn accepted_in_second_before(&self, at: Timestamp) -> f64 {
        let from = at
            .checked_sub(jiff::SignedDuration::from_secs(1))
            .unwrap_or(at);
        let n = self
            .accepted
            .iter()
            .filter(|t| **t >= from && **t <= at)
            .count();
        (n as f64).max(1.0)
    }

    /// A learned pace is forgotten after a minute without refusals: the receiver kept up.
    fn forget_old_pace(&mut self, now: Timestamp) {
        if let Some(refused) = self.refused_at
            && add(refused, FORGET_AFTER) <= now
        {
            self.learned = None;
            self.refused_at = None;
            self.next_pause = PAUSE_FIRST;
            if self.configured.is_none() {
                self.next_start = None;
            }
        }
        if self.paused_until.is_some_and(|p| p <= now) {
            self.paused_until = None;
        }
    }
}

#[cfg(test)]
mod tests;
