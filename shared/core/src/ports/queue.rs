//! The queued path's port: the engine's work as tagged, versioned messages ([`Task`]) and the
//! queue that holds them until they are due.

use async_trait::async_trait;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{Pass, Scheduled, StoreResult};
use crate::domain::delivery::Delivery;

/// Work for the engine, as queue messages. Tagged and versioned so old messages still
/// parse after an upgrade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Task {
    /// Move an enrollment, at `seq`, into `step_id` (`None`: the end), not before
    /// `not_before` (the end of a wait: a timer may fire early).
    #[serde(rename = "advance.v1")]
    AdvanceV1 {
        /// The enrollment to move.
        enrollment_id: String,
        /// The step it moves into; `None`: the end.
        step_id: Option<String>,
        /// The `seq` it must have (the compare-and-set).
        seq: u64,
        /// Not before this time (the end of a wait).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        not_before: Option<Timestamp>,
        /// The walk's time when it is not `not_before` (the end of a wait): after a webhook,
        /// its first attempt's start — the same in every copy of this move, so a walk made
        /// again names the same delivery (its id carries the time). `None` (older messages):
        /// the time it runs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<Timestamp>,
    },
    /// Make the due attempt of a delivery: the one after `attempt` attempts made. A message
    /// whose attempt was made already is dropped (a redelivery never starts a second chain);
    /// `None` (messages queued before this field) acts on the delivery as stored.
    #[serde(rename = "deliver.v1")]
    DeliverV1 {
        /// The delivery.
        delivery_id: String,
        /// How many attempts were made before this one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attempt: Option<u32>,
        /// The delivery's deadline, on the retry that a first attempt queues before storing
        /// its delivery: one that finds no delivery yet looks again, until then.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deadline: Option<Timestamp>,
        /// The start its destination's pace reserved for it (a delivery held back, SPEC §6a).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        slot: Option<Timestamp>,
        /// Held back before its first attempt: the contact was handed back then (SPEC §6a
        /// "scenarios keep moving"), and is not handed back again after the attempt.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        moved_at: Option<Timestamp>,
    },
    /// Make the first attempt of a delivery that is not stored yet: the message carries it
    /// (frozen: every copy sends the same bytes) and the pass it is. webhook-deliver stores
    /// both once, with the attempt's outcome — one write instead of a put before the attempt
    /// and an update after it.
    #[serde(rename = "deliver-first.v1")]
    DeliverFirstV1 {
        /// The delivery, frozen.
        delivery: Box<Delivery>,
        /// The pass it is.
        pass: Pass,
        /// The `updated_at` of the scenario as read when the delivery was made: a copy of the
        /// scenario webhook-deliver holds that is at least this recent signs the attempt
        /// without reading it again (`None`: read it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scenario_at: Option<Timestamp>,
    },
    /// Resend failed deliveries: one new attempt of each (SPEC §7), up to
    /// [`crate::app::RESEND_CHUNK`] a task.
    #[serde(rename = "resend.v1")]
    ResendV1 {
        /// The failed deliveries to resend.
        delivery_ids: Vec<String>,
    },
    /// Fire these occurrences of time-based triggers (each once: SPEC §3), not before their time.
    #[serde(rename = "fire.v1")]
    FireV1 {
        /// The occurrences.
        items: Vec<Scheduled>,
    },
    /// Schedule the occurrences of a newly active time-based scenario for the account's
    /// contacts, one page from `cursor` on; the next page is a new task.
    #[serde(rename = "backfill.v1")]
    BackfillV1 {
        /// The account.
        account: i64,
        /// The scenario that became active.
        scenario_id: String,
        /// Where the previous page ended; `None` for the first.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cursor: Option<String>,
    },
}

impl Task {
    /// Two enqueues of the same key are the same work (a schedule's name derives from it).
    pub fn dedupe_key(&self) -> String {
        match self {
            Task::AdvanceV1 {
                enrollment_id, seq, ..
            } => format!("adv:{enrollment_id}:{seq}"),
            Task::DeliverV1 {
                delivery_id,
                attempt,
                ..
            } => match attempt {
                Some(n) => format!("dlv:{delivery_id}:{n}"),
                None => format!("dlv:{delivery_id}"),
            },
            Task::DeliverFirstV1 { delivery, .. } => format!("dlv:{}:0", delivery.id),
            Task::ResendV1 { delivery_ids } => format!("rsd:{}", delivery_ids.join(",")),
            Task::FireV1 { items } => {
                let ids: Vec<String> = items.iter().map(Scheduled::event_id).collect();
                format!("fire:{}", ids.join(","))
            }
            Task::BackfillV1 {
                scenario_id,
                cursor,
                ..
            } => format!("bfl:{scenario_id}:{}", cursor.as_deref().unwrap_or("")),
        }
    }
}

/// Tasks for later, at a due time (the queued path: SQS, and Scheduler past 15 minutes).
#[async_trait]
pub trait Queue: Send + Sync {
    /// Enqueues a task to run at `due` (now or later, up to the retry window).
    async fn enqueue(&self, task: &Task, due: Timestamp) -> StoreResult<()>;
    /// Enqueues many tasks (an adapter sends them in batches); on `Err` some may have been
    /// sent (every task is safe to repeat).
    async fn enqueue_many(&self, tasks: &[(Task, Timestamp)]) -> StoreResult<()> {
        for (task, due) in tasks {
            self.enqueue(task, *due).await?;
        }
        Ok(())
    }
    /// Sends what this queue holds back (a batch's outbox); a queue that sends at once has
    /// nothing to do. A use case calls it before a write that says its tasks were sent.
    async fn flush(&self) -> StoreResult<()> {
        Ok(())
    }
}
