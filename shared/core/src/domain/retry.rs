//! The retry schedule (SPEC §6), as data: a window from creation, and delays after each
//! failed attempt (the last one repeating), each with ±10 % jitter, never past the deadline.

use std::time::Duration;

use jiff::Timestamp;

use super::time::{add, parse_human_duration};

/// How long a delivery is retried, and how far apart.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// From creation to the deadline.
    pub window: Duration,
    /// Delays after each failed attempt; the last repeats.
    pub delays: Vec<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            window: Duration::from_secs(12 * 3600),
            delays: [10, 60, 300, 900, 1800, 3600, 7200]
                .map(Duration::from_secs)
                .to_vec(),
        }
    }
}

/// The default retry window (`HOOKLINE_RETRY_WINDOW`).
pub const DEFAULT_WINDOW: &str = "12h";
/// The default delays (`HOOKLINE_RETRY_DELAYS`).
pub const DEFAULT_DELAYS: &str = "10s,1m,5m,15m,30m,1h,2h";

impl RetryPolicy {
    /// Builds a policy from `HOOKLINE_RETRY_WINDOW` / `HOOKLINE_RETRY_DELAYS` style text.
    pub fn parse(window: &str, delays: &str) -> Result<RetryPolicy, String> {
        let window = parse_human_duration(window).map_err(|e| format!("retry window: {e}"))?;
        if window.is_zero() {
            return Err("retry window: must be longer than zero".into());
        }
        let delays = delays
            .split(',')
            .map(|d| parse_human_duration(d).map_err(|e| format!("retry delays: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        if delays.iter().any(|d| d.is_zero()) {
            return Err("retry delays: each must be longer than zero".into());
        }
        Ok(RetryPolicy { window, delays })
    }

    /// The deadline of a delivery created at `created`.
    pub fn deadline(&self, created: Timestamp) -> Timestamp {
        add(created, self.window)
    }

    /// The delay after the `attempts_made`-th failed attempt, before jitter.
    pub fn base_delay(&self, attempts_made: usize) -> Duration {
        let i = attempts_made
            .saturating_sub(1)
            .min(self.delays.len().saturating_sub(1));
        self.delays
            .get(i)
            .copied()
            .unwrap_or(Duration::from_secs(7200))
    }

    /// When to try again after a failed attempt made at `now`, or `None` when that attempt
    /// was the last one (made at or after the deadline): the delivery is then failed.
    /// `jitter_unit` in `[0, 1)` picks the jitter (0 → −10 %, 0.5 → none, →1 → +10 %).
    /// A `retry_after` from the receiver is honoured as a minimum. The result is never
    /// after the deadline: a delay that would cross it lands on the deadline itself.
    pub fn next_attempt(
        &self,
        attempts_made: usize,
        now: Timestamp,
        deadline: Timestamp,
        retry_after: Option<Duration>,
        jitter_unit: f64,
    ) -> Option<Timestamp> {
        if now >= deadline {
            return None;
        }
        let factor = 0.9 + 0.2 * jitter_unit.clamp(0.0, 1.0);
        let mut delay = self.base_delay(attempts_made).mul_f64(factor);
        if let Some(ra) = retry_after {
            delay = delay.max(ra);
        }
        Some(add(now, delay).min(deadline))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    #[test]
    fn default_schedule_without_jitter() {
        let p = RetryPolicy::default();
        let created = t(0);
        let deadline = p.deadline(created);
        let mut now = created;
        let mut gaps = vec![];
        let mut n = 1;
        while let Some(next) = p.next_attempt(n, now, deadline, None, 0.5) {
            gaps.push(next.duration_since(now).as_secs());
            now = next;
            n += 1;
        }
        assert_eq!(&gaps[..8], &[10, 60, 300, 900, 1800, 3600, 7200, 7200]);
        // the last attempt is at the deadline itself, and then the delivery fails
        assert_eq!(now, deadline);
        assert_eq!(deadline.duration_since(created).as_secs(), 12 * 3600);
    }

    #[test]
    fn retry_after_is_a_minimum_capped_by_the_deadline() {
        let p = RetryPolicy::default();
        let d = p.deadline(t(0));
        let next = p
            .next_attempt(1, t(0), d, Some(Duration::from_secs(120)), 0.5)
            .unwrap();
        assert_eq!(next, t(120));
        let next = p
            .next_attempt(1, t(0), d, Some(Duration::from_secs(99 * 3600)), 0.5)
            .unwrap();
        assert_eq!(next, d);
    }

    #[test]
    fn parses_settings() {
        let p = RetryPolicy::parse("8s", "1s").unwrap();
        assert_eq!(p.window, Duration::from_secs(8));
        assert_eq!(p.delays, vec![Duration::from_secs(1)]);
        assert_eq!(
            RetryPolicy::parse(DEFAULT_WINDOW, DEFAULT_DELAYS).unwrap(),
            RetryPolicy::default()
        );
        assert!(RetryPolicy::parse("0s", "1s").is_err());
        assert!(RetryPolicy::parse("1h", "1s,,2s").is_err());
        assert!(RetryPolicy::parse("1h", "0s").is_err());
    }

    proptest! {
        /// Whatever the jitter and the receiver's Retry-After, no attempt is ever scheduled
        /// after the deadline, delays stay within ±10 % (or at least Retry-After), and the
        /// schedule ends with one attempt at the deadline.
        #[test]
        fn never_after_the_deadline(
            window in 1u64..200_000,
            delays in proptest::collection::vec(1u64..10_000, 1..8),
            jitters in proptest::collection::vec(0.0f64..1.0, 64),
            retry_after in proptest::option::of(0u64..50_000),
        ) {
            let p = RetryPolicy { window: Duration::from_secs(window), delays: delays.iter().map(|d| Duration::from_secs(*d)).collect() };
            let created = t(0);
            let deadline = p.deadline(created);
            let mut now = created;
            let mut n = 1;
            let mut last = None;
            while let Some(next) = p.next_attempt(n, now, deadline, retry_after.map(Duration::from_secs), jitters[n % 64]) {
                prop_assert!(next <= deadline);
                prop_assert!(next > now);
                let gap = next.duration_since(now).as_secs_f64();
                let base = p.base_delay(n).as_secs_f64();
                let floor = (base * 0.9).max(retry_after.unwrap_or(0) as f64);
                prop_assert!(next == deadline || (gap >= floor - 0.001 && gap <= (base * 1.1).max(floor) + 0.001));
                now = next;
                last = Some(next);
                n += 1;
                prop_assert!(n < 200_000);
            }
            prop_assert_eq!(last, Some(deadline));
        }
    }
}
