//! The queue port on SQS, with EventBridge Scheduler for delays past SQS's 15 minutes.
//!
//! A task due within 900 s is sent with `DelaySeconds`; a later one becomes a one-time
//! schedule (`at(...)`, flexible window off, target: the queue, deleted after it fires) whose
//! name derives from the task and its due time, so enqueueing it twice creates it once.
//!
//! EventBridge Scheduler fires an `at()` anywhere in the minute after it, so a schedule is set
//! [`SCHEDULER_LEAD`] early: the message arrives before its time, the handler finds it early and
//! sends it again with `DelaySeconds` for the rest (SPEC §6: never late because a timer was).

use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use aws_sdk_scheduler::types::{
    ActionAfterCompletion, FlexibleTimeWindow, FlexibleTimeWindowMode, Target,
};
use hookline_core::ports::{Clock, Queue, StoreResult, Task};
use jiff::Timestamp;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// SQS's longest delay.
pub const MAX_SQS_DELAY: Duration = Duration::from_secs(900);
/// How early a schedule is set before its task is due (Scheduler fires up to 59 s late).
pub const SCHEDULER_LEAD: Duration = Duration::from_secs(60);

/// A queue the engine sends to: its URL (for SQS) and ARN (as a schedule's target).
#[derive(Debug, Clone)]
pub struct QueueRef {
    pub url: String,
    pub arn: String,
}

#[derive(Clone)]
pub struct SqsQueue {
    pub sqs: aws_sdk_sqs::Client,
    pub scheduler: aws_sdk_scheduler::Client,
    pub advance: QueueRef,
    pub deliver: QueueRef,
    pub schedule_group: String,
    /// The role EventBridge Scheduler assumes to send to the queues.
    pub scheduler_role_arn: String,
    pub clock: Arc<dyn Clock>,
}

/// `hl-` + 40 hex characters of SHA-256(task key, due time): stable across retries.
pub fn schedule_name(task: &Task, due: Timestamp) -> String {
    let digest =
        Sha256::digest(format!("{}@{}", task.dedupe_key(), due.as_millisecond()).as_bytes());
    format!("hl-{}", &hex::encode(digest)[..40])
}

/// `at(2026-11-26T11:59:00)` in UTC for a task due at 12:00:00.250: `SCHEDULER_LEAD` before
/// it, rounded down to the second (a schedule fires between its time and 59 s after it, so the
/// message always arrives before the task is due).
pub fn at_expression(due: Timestamp) -> String {
    let early = due.as_second() - SCHEDULER_LEAD.as_secs() as i64;
    let at = Timestamp::from_second(early).unwrap_or(due);
    format!(
        "at({})",
        jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%S", at).unwrap_or_default()
    )
}

impl SqsQueue {
    fn target(&self, task: &Task) -> &QueueRef {
        match task {
            // occurrences and backfills enroll contacts: scenario-advance runs them
            Task::AdvanceV1 { .. } | Task::FireV1 { .. } | Task::BackfillV1 { .. } => &self.advance,
            Task::DeliverV1 { .. } | Task::DeliverFirstV1 { .. } | Task::ResendV1 { .. } => {
                &self.deliver
            }
        }
    }
}

/// SendMessageBatch calls in flight at once (`enqueue_many`).
const BATCHES_IN_FLIGHT: usize = 8;
/// The most message bytes one `SendMessageBatch` carries (SQS's batch limit before its 1 MiB
/// messages; SQS bills a request per 64 KiB of it).
pub const MAX_BATCH_BYTES: usize = 256 * 1024;

impl SqsQueue {
    /// The delay SQS takes for a task due at `due`, when it is within SQS's reach (rounded
    /// up: a message never arrives before its time).
    fn sqs_delay(&self, due: Timestamp) -> Option<i32> {
        let wait = due.duration_since(self.clock.now());
        let wait = Duration::try_from(wait).unwrap_or(Duration::ZERO);
        (wait <= MAX_SQS_DELAY)
            .then(|| (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).min(900) as i32)
    }

    /// Up to 10 messages to one queue in one `SendMessageBatch`; an entry SQS refuses fails
    /// the call (the caller's tasks are safe to send again).
    async fn send_batch(&self, url: &str, entries: Vec<(String, i32)>) -> StoreResult<()> {
        let mut batch = self.sqs.send_message_batch().queue_url(url);
        for (i, (body, delay)) in entries.into_iter().enumerate() {
            batch = batch.entries(
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .delay_seconds(delay)
                    .build()?,
            );
        }
        let out = batch.send().await.context("SQS SendMessageBatch")?;
        if let Some(failed) = out.failed.first() {
            anyhow::bail!(
                "SQS SendMessageBatch refused {} of its messages: {}",
                out.failed.len(),
                failed.message.as_deref().unwrap_or(&failed.code)
            );
        }
        Ok(())
    }
}

#[async_trait]
impl Queue for SqsQueue {
    /// Tasks due within SQS's reach go in `SendMessageBatch` calls of up to 10 messages and
    /// `MAX_BATCH_BYTES` (several in flight; a larger message is sent on its own), the
    /// others one by one (each its own schedule).
    async fn enqueue_many(&self, tasks: &[(Task, Timestamp)]) -> StoreResult<()> {
        use futures::StreamExt;
        let mut by_queue: std::collections::BTreeMap<String, Vec<(String, i32)>> =
            Default::default();
        for (task, due) in tasks {
            match self.sqs_delay(*due) {
                Some(_) if serde_json::to_string(task)?.len() > MAX_BATCH_BYTES => {
                    self.enqueue(task, *due).await?
                }
                Some(delay) => by_queue
                    .entry(self.target(task).url.clone())
                    .or_default()
                    .push((serde_json::to_string(task)?, delay)),
                None => self.enqueue(task, *due).await?,
            }
        }
        let mut batches: Vec<(String, Vec<(String, i32)>)> = Vec::new();
        for (url, entries) in by_queue {
            let mut batch: Vec<(String, i32)> = Vec::new();
            for entry in entries {
                let bytes: usize = batch.iter().map(|(b, _)| b.len()).sum();
                if batch.len() == 10 || bytes + entry.0.len() > MAX_BATCH_BYTES {
                    batches.push((url.clone(), std::mem::take(&mut batch)));
                }
                batch.push(entry);
            }
            if !batch.is_empty() {
                batches.push((url, batch));
            }
        }
        let results: Vec<StoreResult<()>> = futures::stream::iter(batches)
            .map(|(url, entries)| async move { self.send_batch(&url, entries).await })
            .buffer_unordered(BATCHES_IN_FLIGHT)
            .collect()
            .await;
        results.into_iter().collect()
    }

    async fn enqueue(&self, task: &Task, due: Timestamp) -> StoreResult<()> {
        let body = serde_json::to_string(task)?;
        let target = self.target(task);
        let wait = due.duration_since(self.clock.now());
        let wait = Duration::try_from(wait).unwrap_or(Duration::ZERO);
        if wait <= MAX_SQS_DELAY {
            // round up: a message never arrives before its time
            let delay = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            self.sqs
                .send_message()
                .queue_url(&target.url)
                .message_body(body)
                .delay_seconds(delay.min(900) as i32)
                .send()
                .await
                .context("SQS SendMessage")?;
            return Ok(());
        }
        let window = FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Off)
            .build()?;
        let schedule_target = Target::builder()
            .arn(&target.arn)
            .role_arn(&self.scheduler_role_arn)
            .input(body)
            .build()?;
        let result = self
            .scheduler
            .create_schedule()
            .name(schedule_name(task, due))
            .group_name(&self.schedule_group)
            .schedule_expression(at_expression(due))
            .schedule_expression_timezone("UTC")
            .flexible_time_window(window)
            .target(schedule_target)
            .action_after_completion(ActionAfterCompletion::Delete)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // the same task for the same time was scheduled already: a repeat is a no-op
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conflict_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(anyhow::Error::from(e).context("Scheduler CreateSchedule")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_names_and_times() {
        let task = Task::DeliverV1 {
            delivery_id: "dlv_1".into(),
            attempt: Some(2),
            deadline: None,
            slot: None,
            moved_at: None,
        };
        let due: Timestamp = "2026-11-26T12:00:00.250Z".parse().unwrap();
        let name = schedule_name(&task, due);
        assert_eq!(name, schedule_name(&task, due));
        assert_ne!(
            name,
            schedule_name(&task, "2026-11-26T12:00:01Z".parse().unwrap())
        );
        assert!(name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        // a minute early, rounded down: never less than 60 s before the due time
        assert_eq!(at_expression(due), "at(2026-11-26T11:59:00)");
        assert_eq!(
            at_expression("2026-11-26T12:00:00Z".parse().unwrap()),
            "at(2026-11-26T11:59:00)"
        );
    }
}
