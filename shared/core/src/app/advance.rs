//! Scenario advancement: run conditions and waits, create deliveries, finish enrollments.

use std::time::Duration;

use super::{Hookline, Outcome};
use crate::domain::contact::Contact;
use crate::domain::delivery::{Delivery, DeliveryStatus, Handoff};
use crate::domain::ids::derived_id;
use crate::domain::payload::{EVENT_NAME, Envelope, ScenarioRef, build_data};
use crate::domain::scenario::{MAX_STEPS, ScenarioRecord, ScenarioStatus, Step, WebhookStep};
use crate::domain::time::{add, rfc3339_seconds};
use crate::ports::{Enrollment, EnrollmentState, Pass, Task};

/// How soon to look again at a task whose enrollment has not yet made the move that queued it.
const NOT_YET: Duration = Duration::from_millis(200);

impl Hookline {
    /// Moves enrollment `enrollment_id`, at `seq`, into `step_id` and on through conditions until
    /// a wait, a webhook or the end. Idempotent: passes are keyed by (enrollment, seq, step), the
    /// delivery id derives from the same, and the enrollment moves with a compare-and-set on `seq`.
    /// Order of writes: record, enqueue, then move — a crash before the move replays the task.
    pub(crate) async fn advance(
        &self,
        enrollment_id: &str,
        step_id: Option<&str>,
        seq: u64,
    ) -> anyhow::Result<Outcome> {
        let p = &self.ports;
        let Some(enrollment) = p.enrollments.get(enrollment_id).await? else {
            tracing::warn!(enrollment_id, "advance for an unknown enrollment: dropped");
            return Ok(Outcome::Done);
        };
        if enrollment.state.is_final() || enrollment.seq > seq {
            return Ok(Outcome::Done); // a repeated message: the move was made
        }
        if enrollment.seq < seq {
            // queued by a handler that has not yet recorded its own move: look again shortly
            return Ok(Outcome::RetryAt(add(p.clock.now(), NOT_YET)));
        }
        let scenario = p
            .scenarios
            .get(enrollment.account, &enrollment.scenario_id)
            .await?;
        let Some(scenario) = scenario.filter(|s| s.status != ScenarioStatus::Archived) else {
            p.enrollments
                .advance(
                    &enrollment.id,
                    seq,
                    enrollment.step_id.as_deref(),
                    EnrollmentState::Stopped,
                )
                .await?;
            return Ok(Outcome::Done);
        };
        let compiled = match scenario.def.compile(true) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(scenario_id = %scenario.id, error = %e, "stored scenario no longer compiles: enrollment stopped");
                p.enrollments
                    .advance(&enrollment.id, seq, None, EnrollmentState::Stopped)
                    .await?;
                return Ok(Outcome::Done);
            }
        };
        let Some(contact) = p
            .contacts
            .get(enrollment.account, enrollment.contact_id)
            .await?
        else {
            anyhow::bail!(
                "contact {} of enrollment {} is missing",
                enrollment.contact_id,
                enrollment.id
            );
        };
        let now = p.clock.now();
        let mut current = step_id.map(str::to_string);
        for _ in 0..=MAX_STEPS {
            let Some(id) = current.take() else {
                p.enrollments
                    .advance(&enrollment.id, seq, None, EnrollmentState::Completed)
                    .await?;
                return Ok(Outcome::Done);
            };
            let Some(step) = compiled.steps.get(&id) else {
                anyhow::bail!("step {id} is not in scenario {}", scenario.id);
            };
            let pass = Pass {
                key: format!("{}:{seq}:{id}", enrollment.id),
                account: enrollment.account,
                scenario_id: scenario.id.clone(),
                step_id: id.clone(),
                contact_id: enrollment.contact_id,
                at: now,
            };
            match step {
                Step::Condition { rule, yes, no } => {
                    p.deliveries.record_pass(&pass, None).await?;
                    current = if rule.matches(&contact.snapshot) {
                        yes.clone()
                    } else {
                        no.clone()
                    };
                }
                Step::Wait { duration, next } => {
                    p.deliveries.record_pass(&pass, None).await?;
                    let until = now
                        .to_zoned(jiff::tz::TimeZone::UTC)
                        .checked_add(*duration)
                        .map(|z| z.timestamp())
                        .unwrap_or(now);
                    let task = Task::AdvanceV1 {
                        enrollment_id: enrollment.id.clone(),
                        step_id: next.clone(),
                        seq: seq + 1,
                    };
                    p.queue.enqueue(&task, until).await?;
                    p.enrollments
                        .advance(&enrollment.id, seq, Some(&id), EnrollmentState::Active)
                        .await?;
                    return Ok(Outcome::Done);
                }
                Step::Webhook(step) => {
                    let delivery =
                        self.new_delivery(&enrollment, &scenario, step, &contact, seq, now);
                    p.deliveries.record_pass(&pass, Some(&delivery)).await?;
                    let task = Task::DeliverV1 {
                        delivery_id: delivery.id.clone(),
                    };
                    p.queue.enqueue(&task, now).await?;
                    p.enrollments
                        .advance(
                            &enrollment.id,
                            seq,
                            Some(&id),
                            EnrollmentState::AwaitingDelivery,
                        )
                        .await?;
                    return Ok(Outcome::Done);
                }
            }
        }
        anyhow::bail!(
            "scenario {} walked more than {MAX_STEPS} steps",
            scenario.id
        )
    }

    /// The delivery of a webhook step for this pass, with its payload frozen now.
    fn new_delivery(
        &self,
        enrollment: &Enrollment,
        scenario: &ScenarioRecord,
        step: &WebhookStep,
        contact: &Contact,
        seq: u64,
        now: jiff::Timestamp,
    ) -> Delivery {
        let event_id = self.ports.ids.new_id("evt");
        let envelope = Envelope {
            id: &event_id,
            event: EVENT_NAME,
            timestamp: rfc3339_seconds(now),
            id_client: enrollment.account,
            scenario: Some(ScenarioRef {
                id: &scenario.id,
                step_id: &step.id,
            }),
            data: build_data(&step.fields, &step.additional, contact),
        };
        Delivery {
            id: derived_id("dlv", &[&enrollment.id, &seq.to_string(), &step.id]),
            account: enrollment.account,
            scenario_id: scenario.id.clone(),
            step_id: step.id.clone(),
            contact_id: contact.id,
            handoff: Handoff {
                enrollment_id: enrollment.id.clone(),
                next_step: step.next.clone(),
                seq: seq + 1,
            },
            url: step.url.to_string(),
            headers: step.headers.clone(),
            payload: envelope.to_json(),
            status: DeliveryStatus::Pending,
            created_at: now,
            deadline: self.policy.deadline(now),
            next_attempt_at: Some(now),
            attempts: Vec::new(),
        }
    }
}
