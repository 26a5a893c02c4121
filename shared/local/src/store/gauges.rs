//! What `GET /metrics` shows as gauges, read from the rows (the truth of what is pending and
//! due) at each scrape.

use hookline_core::domain::time::to_millis;
use jiff::Timestamp;

use super::SqliteStore;

/// Counts at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Gauges {
    /// Deliveries `pending`.
    pub deliveries_pending: u64,
    /// Pending deliveries whose next attempt is due.
    pub retries_due: u64,
    /// Waiting contacts whose wait has ended.
    pub waits_due: u64,
    /// Occurrences of time-based triggers due.
    pub occurrences_due: u64,
}

impl SqliteStore {
    /// The gauges at `now` (one read transaction: the four counts agree with each other).
    pub async fn gauges(&self, now: Timestamp) -> anyhow::Result<Gauges> {
        let now = to_millis(now);
        self.db()
            .read(move |c| {
                let count = |sql: &str, now: Option<i64>| -> anyhow::Result<u64> {
                    let n: i64 = match now {
                        Some(now) => c.query_row(sql, [now], |r| r.get(0))?,
                        None => c.query_row(sql, [], |r| r.get(0))?,
                    };
                    Ok(n.max(0) as u64)
                };
                Ok(Gauges {
                    deliveries_pending: count(
                        "SELECT count(*) FROM deliveries WHERE status = 'pending'",
                        None,
                    )?,
                    retries_due: count(
                        "SELECT count(*) FROM deliveries WHERE status = 'pending' AND next_attempt_at <= ?1",
                        Some(now),
                    )?,
                    waits_due: count(
                        "SELECT count(*) FROM enrollments WHERE state = 'waiting' AND due_at <= ?1",
                        Some(now),
                    )?,
                    occurrences_due: count("SELECT count(*) FROM occurrences WHERE at <= ?1", Some(now))?,
                })
            })
            .await
    }
}
