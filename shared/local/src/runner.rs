//! The worker loop of local mode: lease due jobs, run them on the engine, many at once.

use std::sync::Arc;
use std::time::Duration;

use hookline_core::Hookline;
use hookline_core::app::Outcome;
use hookline_core::domain::time::add;
use tokio::sync::{Semaphore, watch};

use crate::SqliteQueue;

/// Longer than the slowest attempt (15 s) plus the store work around it.
const LEASE: Duration = Duration::from_secs(60);
/// The longest the loop sleeps without looking at the table.
const IDLE_POLL: Duration = Duration::from_millis(500);

pub struct Runner {
    engine: Hookline,
    queue: SqliteQueue,
    concurrency: usize,
}

impl Runner {
    /// `concurrency`: how many jobs run at once (a slow receiver holds up one slot, not all).
    pub fn new(engine: Hookline, queue: SqliteQueue, concurrency: usize) -> Self {
        Runner {
            engine,
            queue,
            concurrency: concurrency.max(1),
        }
    }

    /// Runs until `shutdown` turns true, then waits for the jobs in flight.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let released = self.queue.release_all_leases().await?;
        if released > 0 {
            tracing::info!(
                released,
                "resuming jobs left running by the previous process"
            );
        }
        let slots = Arc::new(Semaphore::new(self.concurrency));
        let ready = self.queue.notified();
        let clock = self.engine.ports.clock.clone();
        loop {
            if *shutdown.borrow() {
                break;
            }
            let free = slots.available_permits();
            if free == 0 {
                tokio::select! {
                    permit = slots.clone().acquire_owned() => drop(permit),
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            let now = clock.now();
            let jobs = match self.queue.lease(now, free.min(64), LEASE).await {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::error!(error = %e, "leasing jobs failed");
                    tokio::time::sleep(IDLE_POLL).await;
                    continue;
                }
            };
            if jobs.is_empty() {
                let wait = match self.queue.next_due().await {
                    Ok(Some(due)) => due
                        .duration_since(clock.now())
                        .unsigned_abs()
                        .min(IDLE_POLL),
                    _ => IDLE_POLL,
                };
                tokio::select! {
                    _ = ready.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            for job in jobs {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    break;
                };
                let engine = self.engine.clone();
                let queue = self.queue.clone();
                tokio::spawn(async move {
                    run_job(&engine, &queue, job).await;
                    drop(permit);
                });
            }
        }
        // Graceful: let the jobs in flight finish (each is bounded by the request timeout).
        let _ = tokio::time::timeout(
            Duration::from_secs(20),
            slots.acquire_many(self.concurrency as u32),
        )
        .await;
        Ok(())
    }
}

async fn run_job(engine: &Hookline, queue: &SqliteQueue, job: crate::LeasedJob) {
    let Some(task) = job.task else {
        tracing::error!(job = job.id, "a job that is not a task was dropped");
        let _ = queue.complete(job.id).await;
        return;
    };
    let result = match engine.handle(&task).await {
        Ok(Outcome::Done) => queue.complete(job.id).await,
        Ok(Outcome::RetryAt(at)) => queue.reschedule(job.id, at, false).await,
        Err(e) => {
            // may pass (a store hiccup): back off 1 s, 2 s, 4 s … up to a minute
            let backoff = Duration::from_secs(1 << job.tries.min(6));
            tracing::warn!(job = job.id, tries = job.tries + 1, error = %e, "job failed; will retry");
            queue
                .reschedule(job.id, add(engine.ports.clock.now(), backoff), true)
                .await
        }
    };
    if let Err(e) = result {
        // the lease expires and the job runs again: at least once
        tracing::error!(job = job.id, error = %e, "could not settle a job");
    }
}
