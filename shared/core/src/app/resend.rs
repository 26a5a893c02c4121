//! Resend (SPEC §7): one new attempt of a failed delivery, with the same bytes and `id`, or of
//! every failed delivery of a step since a time. The attempt is made by the workers (local
//! mode) or the deliver queue's consumer (AWS), never inside the API call; a resend that is
//! accepted moves the delivery and its statistics from `failed` to `accepted`.

use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::views::DeliveryView;
use super::{AppError, Hookline};
use crate::domain::Invalid;
use crate::domain::delivery::{Delivery, DeliveryStatus};
use crate::domain::scenario::StepDef;
use crate::ports::{DeliveryFilter, Pipeline, Task};

/// Most deliveries one `resend-failed` call resends.
pub const MAX_RESEND: usize = 10_000;
/// Deliveries per resend task the API call queues (AWS: 10,000 deliveries are 100 messages,
/// each split by webhook-deliver into one message per delivery).
pub const RESEND_CHUNK: usize = 100;
/// Resends of one task made at once.
const RESEND_CONCURRENCY: usize = 16;

/// `POST …/resend-failed` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResendFailed {
    /// RFC 3339: failed deliveries created at or after this time are resent.
    #[schema(format = DateTime)]
    pub since: String,
}

/// `POST …/resend-failed` answer.
#[derive(Debug, Clone, PartialEq, serde::Serialize, ToSchema)]
pub struct ResendQueued {
    /// How many failed deliveries will be resent.
    pub queued: usize,
}

impl Hookline {
    /// 404 unless `step_id` is a webhook step of one of the account's scenarios.
    async fn webhook_step(
        &self,
        account: i64,
        scenario_id: &str,
        step_id: &str,
    ) -> Result<(), AppError> {
        let scenario = self.scenario(account, scenario_id).await?;
        match scenario.def.step(step_id) {
            Some(StepDef::SendWebhook(_)) => Ok(()),
            Some(_) => Err(AppError::NotFound(format!(
                "step `{step_id}` is not a webhook step"
            ))),
            None => Err(AppError::NotFound(format!(
                "no step `{step_id}` in scenario `{scenario_id}`"
            ))),
        }
    }

    /// `POST …/deliveries/{deliveryId}/resend`: 202 with the delivery as it is now; 409 when
    /// it is not `failed`.
    pub async fn resend_delivery(
        &self,
        account: i64,
        scenario_id: &str,
        step_id: &str,
        delivery_id: &str,
    ) -> Result<DeliveryView, AppError> {
        self.webhook_step(account, scenario_id, step_id).await?;
        let delivery = self
            .ports
            .deliveries
            .get(delivery_id)
            .await?
            .filter(|d| {
                d.account == account && d.scenario_id == scenario_id && d.step_id == step_id
            })
            .ok_or_else(|| {
                AppError::NotFound(format!("no delivery `{delivery_id}` in step `{step_id}`"))
            })?;
        if delivery.status != DeliveryStatus::Failed {
            return Err(AppError::Conflict(format!(
                "only a failed delivery can be resent; this one is {}",
                delivery.status.as_str()
            )));
        }
        self.queue_resends(vec![delivery.id.clone()]).await?;
        Ok(delivery.into())
    }

    /// `POST …/resend-failed`: every failed delivery of the step created since `since`
    /// (newest first, at most [`MAX_RESEND`]).
    pub async fn resend_failed(
        &self,
        account: i64,
        scenario_id: &str,
        step_id: &str,
        body: Value,
    ) -> Result<ResendQueued, AppError> {
        let request: ResendFailed = crate::domain::from_json_value(body, "")?;
        let since: jiff::Timestamp = request.since.parse().map_err(|_| {
            Invalid::new(
                "invalid_time",
                "since",
                "must be an RFC 3339 time, e.g. 2026-11-26T12:00:00Z",
            )
        })?;
        self.webhook_step(account, scenario_id, step_id).await?;
        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        'pages: loop {
            let page = self
                .ports
                .deliveries
                .list(&DeliveryFilter {
                    account,
                    scenario_id,
                    step_id,
                    status: Some(DeliveryStatus::Failed),
                    since: Some(since),
                    cursor: cursor.as_deref(),
                    limit: super::scenarios::MAX_PAGE,
                })
                .await?;
            for d in page.items {
                if ids.len() >= MAX_RESEND {
                    break 'pages;
                }
                ids.push(d.id);
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let queued = ids.len();
        self.queue_resends(ids).await?;
        Ok(ResendQueued { queued })
    }

    /// Hands resends to the workers (local mode) or the deliver queue, [`RESEND_CHUNK`] a task.
    async fn queue_resends(&self, ids: Vec<String>) -> anyhow::Result<()> {
        match &self.ports.pipeline {
            Pipeline::Inline { dispatch, .. } => {
                if !ids.is_empty() {
                    dispatch.resend(ids);
                }
            }
            Pipeline::Queued(queue) => {
                let now = self.ports.clock.now();
                for chunk in ids.chunks(RESEND_CHUNK) {
                    let task = Task::ResendV1 {
                        delivery_ids: chunk.to_vec(),
                    };
                    queue.enqueue(&task, now).await?;
                }
            }
        }
        Ok(())
    }

    /// A queued resend task (webhook-deliver): one delivery is resent; a task of several (up
    /// to [`RESEND_CHUNK`], as the API call queues them) is split into one task per delivery,
    /// queued at once, so that a message holds one attempt, however slow its receiver — never
    /// more than the function's time (a task of 100 attempts of up to 15 s each would outlive
    /// it, be received again and again, and repeat its first attempts while never making its
    /// last ones). A crash while splitting splits again: a delivery resent already is no
    /// longer failed, and its task is dropped.
    pub(crate) async fn resend_task(&self, ids: &[String]) -> anyhow::Result<super::Outcome> {
        if let [id] = ids {
            self.resend_id(id).await?;
            return Ok(super::Outcome::Done);
        }
        let now = self.ports.clock.now();
        let tasks: Vec<(Task, jiff::Timestamp)> = ids
            .iter()
            .map(|id| {
                let task = Task::ResendV1 {
                    delivery_ids: vec![id.clone()],
                };
                (task, now)
            })
            .collect();
        self.queue()?.enqueue_many(&tasks).await?;
        Ok(super::Outcome::Done)
    }

    /// Resends each of these deliveries that is still failed; `Err` when one failed in a way
    /// that may pass (the task runs again: the ones done are no longer failed, or were
    /// recorded and are skipped by the compare-and-set).
    pub async fn resend_stored(&self, ids: &[String]) -> anyhow::Result<()> {
        let mut results = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(RESEND_CONCURRENCY) {
            let work = chunk.iter().map(|id| self.resend_id(id));
            results.extend(futures::future::join_all(work).await);
        }
        results.into_iter().collect()
    }

    async fn resend_id(&self, id: &str) -> anyhow::Result<()> {
        match self.ports.deliveries.get(id).await? {
            Some(d) => self.resend_one(d).await,
            None => {
                tracing::warn!(delivery_id = %id, "resend of an unknown delivery: dropped");
                Ok(())
            }
        }
    }

    /// One new attempt of a failed delivery, recorded with a compare-and-set (a repeated task
    /// makes at most a repeated request, never a second count).
    async fn resend_one(&self, delivery: Delivery) -> anyhow::Result<()> {
        if delivery.status != DeliveryStatus::Failed {
            return Ok(()); // resent already, or never failed
        }
        let signer = self.signer(&delivery, None).await;
        let start = self.ports.clock.now();
        let (attempt, status, _) = self.post(&delivery, start, &signer).await;
        let accepted = status == DeliveryStatus::Accepted;
        let recorded = self
            .ports
            .deliveries
            .record_resend(&delivery, &attempt, accepted)
            .await?;
        if recorded && accepted {
            crate::metrics::webhook_settled(status);
        }
        tracing::info!(delivery_id = %delivery.id, accepted, recorded, "delivery resent");
        Ok(())
    }
}
