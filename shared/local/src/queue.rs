//! The durable queue: a `jobs` table with a due time and a lease.
//!
//! A job is leased (not deleted) while it runs; it is deleted when done and rescheduled when
//! it asks to run again. A crash leaves the lease to expire — and a new process clears every
//! lease at start — so nothing is lost. The `dedupe_key` keeps one job per piece of work.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hookline_core::domain::time::{from_millis, to_millis};
use hookline_core::ports::{Queue, StoreResult, Task};
use jiff::Timestamp;
use rusqlite::{OptionalExtension, params};
use tokio::sync::Notify;

use crate::Db;
use crate::db::{exec, row};

#[derive(Clone)]
pub struct SqliteQueue {
    db: Db,
    /// Wakes the runner when a job is enqueued for now.
    ready: Arc<Notify>,
}

#[derive(Debug, Clone)]
pub struct LeasedJob {
    pub id: i64,
    /// `None` when the stored text no longer parses as a task.
    pub task: Option<Task>,
    pub tries: u32,
}

impl SqliteQueue {
    pub fn new(db: Db) -> Self {
        SqliteQueue {
            db,
            ready: Arc::new(Notify::new()),
        }
    }

    pub fn notified(&self) -> Arc<Notify> {
        self.ready.clone()
    }

    /// Leases up to `n` due jobs for `lease`.
    pub async fn lease(
        &self,
        now: Timestamp,
        n: usize,
        lease: Duration,
    ) -> anyhow::Result<Vec<LeasedJob>> {
        let now_ms = to_millis(now);
        let until = now_ms + lease.as_millis() as i64;
        let rows = self
            .db
            .call(move |c| {
                let mut stmt = c.prepare_cached(
                    "UPDATE jobs SET lease_until = ?1 WHERE id IN (
                         SELECT id FROM jobs WHERE due_at <= ?2 AND (lease_until IS NULL OR lease_until < ?2)
                         ORDER BY due_at LIMIT ?3)
                     RETURNING id, task, tries",
                )?;
                let rows = stmt
                    .query_map(params![until, now_ms, n as i64], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, raw, tries)| LeasedJob {
                id,
                task: serde_json::from_str(&raw).ok(),
                tries: tries as u32,
            })
            .collect())
    }

    /// Done: the job is removed.
    pub async fn complete(&self, id: i64) -> anyhow::Result<()> {
        self.db
            .call(move |c| {
                exec(c, "DELETE FROM jobs WHERE id = ?1", params![id])?;
                Ok(())
            })
            .await
    }

    /// Runs the job again at `due` (`failed` counts a try).
    pub async fn reschedule(&self, id: i64, due: Timestamp, failed: bool) -> anyhow::Result<()> {
        let due_ms = to_millis(due);
        self.db
            .call(move |c| {
                exec(c,
                    "UPDATE jobs SET due_at = ?1, lease_until = NULL, tries = tries + ?2 WHERE id = ?3",
                    params![due_ms, failed as i64, id],
                )?;
                Ok(())
            })
            .await
    }

    /// At start-up: this process is the only one, so no job is running.
    pub async fn release_all_leases(&self) -> anyhow::Result<usize> {
        self.db
            .call(|c| {
                Ok(exec(
                    c,
                    "UPDATE jobs SET lease_until = NULL WHERE lease_until IS NOT NULL",
                    [],
                )?)
            })
            .await
    }

    /// When the next job falls due, if any is waiting.
    pub async fn next_due(&self) -> anyhow::Result<Option<Timestamp>> {
        let ms: Option<i64> = self
            .db
            .call(|c| {
                Ok(row(
                    c,
                    "SELECT MIN(due_at) FROM jobs WHERE lease_until IS NULL",
                    [],
                    |r| r.get(0),
                )
                .optional()?
                .flatten())
            })
            .await?;
        Ok(ms.map(from_millis))
    }

    /// How many jobs are waiting or running.
    pub async fn len(&self) -> anyhow::Result<u64> {
        self.db
            .call(|c| Ok(row(c, "SELECT COUNT(*) FROM jobs", [], |r| r.get::<_, i64>(0))? as u64))
            .await
    }
}

#[async_trait]
impl Queue for SqliteQueue {
    async fn enqueue(&self, task: &Task, due: Timestamp) -> StoreResult<()> {
        let key = task.dedupe_key();
        let text = serde_json::to_string(task)?;
        let due_ms = to_millis(due);
        self.db
            .call(move |c| {
                exec(c,
                    "INSERT INTO jobs (dedupe_key, task, due_at) VALUES (?1, ?2, ?3) ON CONFLICT (dedupe_key) DO NOTHING",
                    params![key, text, due_ms],
                )?;
                Ok(())
            })
            .await?;
        if due <= Timestamp::now() {
            self.ready.notify_one();
        }
        Ok(())
    }
}
