//! Webhook delivery on the queued path (AWS): make the due attempt, schedule the retry or settle the delivery, and
//! hand the contact back to its scenario after the first attempt.

use super::{Hookline, Outcome};
use crate::domain::delivery::{Delivery, DeliveryStatus};
use crate::domain::retry::DEADLINE_GRACE;
use crate::domain::signing;
use crate::domain::time::add;
use crate::ports::{OutboundRequest, Task};

impl Hookline {
    /// Reconciles a delivery with its state: safe to run twice, or after a crash anywhere.
    /// An attempt is recorded with a compare-and-set on the attempt count, so a duplicate
    /// worker never counts one twice (at worst the receiver sees the same `id` again).
    /// The hand-back is enqueued after the first attempt is made and *before* it is recorded,
    /// so a delivery that has attempts has always handed its contact back (a crash in between
    /// repeats the attempt and the hand-back, which the enrollment's sequence makes a no-op).
    pub(crate) async fn deliver(&self, delivery_id: &str) -> anyhow::Result<Outcome> {
        let p = &self.ports;
        let Some(delivery) = p.deliveries.get(delivery_id).await? else {
            tracing::warn!(delivery_id, "deliver for an unknown delivery: dropped");
            return Ok(Outcome::Done);
        };
        if delivery.status != DeliveryStatus::Pending {
            return Ok(Outcome::Done);
        }
        let start = p.clock.now();
        if let Some(next) = delivery.next_attempt_at
            && next > start
        {
            return Ok(Outcome::RetryAt(next));
        }
        let attempts_before = delivery.attempts.len();
        if start > add(delivery.deadline, DEADLINE_GRACE) {
            // Picked up too late (Hookline was down at the deadline): no attempt after it.
            tracing::warn!(
                delivery_id,
                "deadline passed before the last attempt could be made"
            );
            if attempts_before == 0 {
                self.hand_back(&delivery).await?;
            }
            p.deliveries
                .record_attempt(&delivery, None, DeliveryStatus::Failed, None)
                .await?;
            return Ok(Outcome::Done);
        }
        let (attempt, status, next) = self.post(&delivery, start).await;
        if attempts_before == 0 {
            self.hand_back(&delivery).await?;
        }
        let recorded = p
            .deliveries
            .record_attempt(&delivery, Some(&attempt), status, next)
            .await?;
        if !recorded {
            return Ok(Outcome::Done); // another worker recorded this attempt
        }
        Ok(match next {
            Some(at) => Outcome::RetryAt(at),
            None => Outcome::Done,
        })
    }

    /// One POST of `delivery`, started at `start`, and what follows from its answer: the
    /// attempt to record, the delivery's new status and its next attempt time (both paths).
    pub(crate) async fn post(
        &self,
        delivery: &Delivery,
        start: jiff::Timestamp,
    ) -> (
        crate::domain::delivery::Attempt,
        DeliveryStatus,
        Option<jiff::Timestamp>,
    ) {
        let p = &self.ports;
        let mut headers = delivery.headers.clone();
        headers.extend(self.signature_headers(delivery, start).await);
        let outcome = p
            .sender
            .send(&OutboundRequest {
                url: &delivery.url,
                headers: &headers,
                body: &delivery.payload,
            })
            .await;
        let end = p.clock.now();
        let attempts_before = delivery.attempts.len();
        let (status, next) = if outcome.accepted() {
            (DeliveryStatus::Accepted, None)
        } else {
            match self.policy.next_attempt(
                attempts_before + 1,
                end,
                delivery.deadline,
                outcome.retry_after,
                p.ids.random_unit(),
            ) {
                Some(at) => (DeliveryStatus::Pending, Some(at)),
                None => (DeliveryStatus::Failed, None),
            }
        };
        tracing::debug!(
            delivery_id = %delivery.id,
            attempt = attempts_before + 1,
            http_status = outcome.status,
            error = outcome.error.as_deref(),
            outcome = status.as_str(),
            "attempt made"
        );
        (outcome.into_attempt(start), status, next)
    }

    /// The Standard Webhooks headers of an attempt at `at`, when its step signs (SPEC §5):
    /// signed with the step's secret as stored now (and the previous one for 24 hours after a
    /// rotation). None when the step does not sign, or has no secret yet.
    async fn signature_headers(
        &self,
        delivery: &Delivery,
        at: jiff::Timestamp,
    ) -> Vec<(String, String)> {
        let loaded = match self
            .loaded_scenario(delivery.account, &delivery.scenario_id)
            .await
        {
            Ok(loaded) => loaded,
            Err(e) => {
                // the attempt goes on; the receiver refuses it, and it is retried
                tracing::warn!(delivery_id = %delivery.id, error = %e, "the step's secret could not be read");
                return Vec::new();
            }
        };
        let Some(secret) = loaded
            .as_ref()
            .and_then(|l| l.record.secrets.get(&delivery.step_id))
        else {
            return Vec::new();
        };
        let Some(id) = envelope_id(&delivery.payload) else {
            return Vec::new();
        };
        signing::headers(
            &secret.signing_secrets(at),
            &id,
            at,
            delivery.payload.as_bytes(),
        )
    }

    /// The contact moves on once the first attempt has been made, whatever its outcome.
    async fn hand_back(&self, delivery: &Delivery) -> anyhow::Result<()> {
        let p = &self.ports;
        let task = Task::AdvanceV1 {
            enrollment_id: delivery.handoff.enrollment_id.clone(),
            step_id: delivery.handoff.next_step.clone(),
            seq: delivery.handoff.seq,
        };
        self.queue()?.enqueue(&task, p.clock.now()).await?;
        Ok(())
    }
}

/// The envelope `id` of a frozen payload (the `webhook-id` of its signature).
fn envelope_id(payload: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Id {
        id: String,
    }
    serde_json::from_str::<Id>(payload).ok().map(|e| e.id)
}
