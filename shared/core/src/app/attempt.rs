//! One attempt of a webhook, the part both runtimes share: sign it, POST it, judge the answer
//! (the attempt to record, the delivery's new status and next attempt time, and what the
//! answer says of its destination). What comes around it differs: the queued path on AWS
//! (`deliver.rs`) and the inline path of local mode (`inline.rs`).

use super::Hookline;
use crate::domain::delivery::{Attempt, Delivery, DeliveryStatus};
use crate::domain::destination::Answer;
use crate::domain::signing::{self, StepSecret};
use crate::ports::OutboundRequest;

/// What signs the attempts of one delivery: the step's secret as read before the attempt
/// starts (so that nothing slow stands between the start a destination's pace gave and the
/// request leaving), and the envelope's `id`. Signs nothing when the step does not sign.
pub(crate) struct Signer(Option<(StepSecret, String)>);

impl Signer {
    /// The Standard Webhooks headers of an attempt at `at` (SPEC §5): the current secret, and
    /// the previous one for 24 hours after a rotation.
    fn headers(&self, delivery: &Delivery, at: jiff::Timestamp) -> Vec<(String, String)> {
        let Some((secret, id)) = &self.0 else {
            return Vec::new();
        };
        signing::headers(
            &secret.signing_secrets(at),
            id,
            at,
            delivery.payload.as_bytes(),
        )
    }
}

impl Hookline {
    /// The [`Signer`] of `delivery`'s attempts: the step's secret as stored now (none when the
    /// step does not sign, has no secret yet, or the payload is past its bound).
    ///
    /// The scenario read last is kept: a first attempt whose message says which version made
    /// the delivery (`scenario_at`, read by intake or scenario-advance a moment before) signs
    /// with the copy held when it is that version or newer — no read per webhook. Anything
    /// else (a retry, a resend, an older copy) reads the scenario as stored now.
    pub(crate) async fn signer(
        &self,
        delivery: &Delivery,
        scenario_at: Option<jiff::Timestamp>,
    ) -> Signer {
        if delivery.unsendable().is_some() {
            return Signer(None);
        }
        let key = (delivery.account, delivery.scenario_id.clone());
        let held = scenario_at.and_then(|version| {
            let held = self.signing.lock().ok()?.get(&key).cloned()?;
            (held.record.updated_at >= version).then_some(held)
        });
        let loaded = match held {
            Some(held) => Ok(Some(held)),
            None => self
                .loaded_scenario(delivery.account, &delivery.scenario_id)
                .await
                .inspect(|loaded| {
                    if let Some(loaded) = loaded {
                        super::cache::put(&self.signing, key, loaded.clone());
                    }
                }),
        };
        let loaded = match loaded {
            Ok(loaded) => loaded,
            Err(e) => {
                // the attempt goes on; the receiver refuses it, and it is retried
                tracing::warn!(delivery_id = %delivery.id, error = %e, "the step's secret could not be read");
                return Signer(None);
            }
        };
        let secret = loaded
            .as_ref()
            .and_then(|l| l.record.secrets.get(&delivery.step_id));
        match (secret, envelope_id(&delivery.payload)) {
            (Some(secret), Some(id)) => Signer(Some((secret.clone(), id))),
            _ => Signer(None),
        }
    }

    /// One POST of `delivery`, started at `start`, and what follows from its answer: the
    /// attempt to record, the delivery's new status and its next attempt time (both paths).
    pub(crate) async fn post(
        &self,
        delivery: &Delivery,
        start: jiff::Timestamp,
        signer: &Signer,
    ) -> (Attempt, DeliveryStatus, Option<jiff::Timestamp>) {
        let (attempt, status, next, _) = self.post_judged(delivery, start, signer).await;
        (attempt, status, next)
    }

    /// [`Self::post`], with what the answer says of the destination (SPEC §6a).
    pub(crate) async fn post_judged(
        &self,
        delivery: &Delivery,
        start: jiff::Timestamp,
        signer: &Signer,
    ) -> (Attempt, DeliveryStatus, Option<jiff::Timestamp>, Answer) {
        let p = &self.ports;
        if let Some(error) = delivery.unsendable() {
            // a payload past the bound: failed at once, nothing sent (SPEC §5)
            // (counted by the failed-deliveries metric filter, `$.fields.outcome`, like any
            // delivery that fails)
            tracing::warn!(delivery_id = %delivery.id, error, outcome = "failed", "delivery failed: nothing sent");
            let attempt = Attempt {
                at: start,
                status: None,
                error: Some(error.to_string()),
                duration_ms: 0,
                response_snippet: None,
            };
            return (attempt, DeliveryStatus::Failed, None, Answer::NotSent);
        }
        let mut headers = delivery.headers.clone();
        headers.extend(signer.headers(delivery, start));
        let outcome = p
            .sender
            .send(&OutboundRequest {
                url: &delivery.url,
                headers: &headers,
                body: &delivery.payload,
            })
            .await;
        let end = p.clock.now();
        let attempts_before = delivery.attempt_count as usize;
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
        if status == DeliveryStatus::Failed {
            // at the level the functions run at (`RUST_LOG=info`): the template's
            // FailedDeliveries metric filter counts these lines (`$.fields.outcome`)
            tracing::warn!(
                delivery_id = %delivery.id,
                attempt = attempts_before + 1,
                http_status = outcome.status,
                error = outcome.error.as_deref(),
                outcome = status.as_str(),
                "delivery failed: no attempt left before its deadline"
            );
        } else {
            tracing::debug!(
                delivery_id = %delivery.id,
                attempt = attempts_before + 1,
                http_status = outcome.status,
                error = outcome.error.as_deref(),
                outcome = status.as_str(),
                "attempt made"
            );
        }
        crate::metrics::attempt_made(&outcome);
        let answer = Answer::of(&outcome);
        (outcome.into_attempt(start), status, next, answer)
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
