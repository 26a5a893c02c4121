//! The tasks a batch of events queues, held and sent together: a queue that batches its sends
//! (SQS: `SendMessageBatch`, one request for up to ten) then costs one request per ten tasks
//! instead of one each.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use jiff::Timestamp;

use crate::ports::{Queue, StoreResult, Task};

/// Holds what is enqueued until [`Queue::flush`]. Holding a send back is safe where nothing
/// written after it says it was sent: every use case writes its records before it queues the
/// next stage, and one that writes after (an event's answer kept apart) flushes first.
pub(crate) struct Outbox {
    inner: Arc<dyn Queue>,
    held: Mutex<Vec<(Task, Timestamp)>>,
}

impl Outbox {
    pub(crate) fn new(inner: Arc<dyn Queue>) -> Self {
        Outbox {
            inner,
            held: Mutex::default(),
        }
    }

    fn hold(&self, tasks: impl IntoIterator<Item = (Task, Timestamp)>) -> StoreResult<()> {
        self.held
            .lock()
            .map_err(|_| anyhow::anyhow!("outbox lock poisoned"))?
            .extend(tasks);
        Ok(())
    }
}

#[async_trait]
impl Queue for Outbox {
    async fn enqueue(&self, task: &Task, due: Timestamp) -> StoreResult<()> {
        self.hold([(task.clone(), due)])
    }

    async fn enqueue_many(&self, tasks: &[(Task, Timestamp)]) -> StoreResult<()> {
        self.hold(tasks.iter().cloned())
    }

    /// Sends everything held, once per task (the same work queued twice by one batch — an
    /// event repeated inside it — goes once).
    async fn flush(&self) -> StoreResult<()> {
        let held = std::mem::take(
            &mut *self
                .held
                .lock()
                .map_err(|_| anyhow::anyhow!("outbox lock poisoned"))?,
        );
        let mut seen = std::collections::HashSet::new();
        let tasks: Vec<(Task, Timestamp)> = held
            .into_iter()
            .filter(|(task, due)| seen.insert((task.dedupe_key(), due.as_millisecond())))
            .collect();
        if tasks.is_empty() {
            return Ok(());
        }
        self.inner.enqueue_many(&tasks).await
    }
}
