//! Walking a scenario: from a step, through the instant steps (conditions), to the first step
//! that takes time (a webhook, a wait) or the end. Pure: it decides, the stores record.

use super::Hookline;
use crate::domain::contact::Contact;
use crate::domain::delivery::{Delivery, DeliveryStatus, Handoff};
use crate::domain::ids::{delivery_id, derived_id};
use crate::domain::payload::{EVENT_NAME, Envelope, ScenarioRef, render_payload};
use crate::domain::scenario::{Compiled, MAX_STEPS, ScenarioRecord, Step, WebhookStep};
use crate::domain::time::rfc3339_seconds;
use crate::ports::{Pass, Walk, WalkEnd};

/// Who is walking: an enrollment at a sequence number.
pub(crate) struct Walker<'a> {
    pub enrollment_id: &'a str,
    pub account: i64,
    pub contact: &'a Contact,
    pub seq: u64,
    /// Delivery ids: new time-ordered ids (the inline path, where the walk is stored in the
    /// same commit as the compare-and-set that makes it once) or derived from the pass, so
    /// that a retried handler names the same record (the queued path).
    pub fresh_ids: bool,
}

impl Hookline {
    /// Walks from `from` (`None`: the end). Pass keys are `enrollment:seq:step`, so a
    /// repeated walk names the same records.
    pub(crate) fn walk(
        &self,
        who: &Walker<'_>,
        scenario: &ScenarioRecord,
        compiled: &Compiled,
        from: Option<&str>,
        now: jiff::Timestamp,
    ) -> anyhow::Result<Walk> {
        let mut passes = Vec::new();
        let mut current = from.map(str::to_string);
        for _ in 0..=MAX_STEPS {
            let Some(id) = current.take() else {
                return Ok(Walk {
                    passes,
                    end: WalkEnd::Complete,
                });
            };
            let Some(step) = compiled.steps.get(&id) else {
                anyhow::bail!("step {id} is not in scenario {}", scenario.id);
            };
            let pass = Pass {
                key: format!("{}:{}:{id}", who.enrollment_id, who.seq),
                account: who.account,
                scenario_id: scenario.id.clone(),
                step_id: id.clone(),
                contact_id: who.contact.id,
                at: now,
                first_for_contact: !scenario.def.allow_reentry,
            };
            match step {
                Step::Condition { rule, yes, no } => {
                    passes.push(pass);
                    current = if rule.matches(&who.contact.snapshot) {
                        yes.clone()
                    } else {
                        no.clone()
                    };
                }
                Step::Wait { duration, next } => {
                    passes.push(pass);
                    let until = now
                        .to_zoned(jiff::tz::TimeZone::UTC)
                        .checked_add(*duration)
                        .map(|z| z.timestamp())
                        .unwrap_or(now);
                    return Ok(Walk {
                        passes,
                        end: WalkEnd::Wait {
                            step_id: id,
                            until,
                            resume: next.clone(),
                        },
                    });
                }
                Step::Webhook(step) => {
                    let delivery = self.new_delivery(who, scenario, step, now);
                    return Ok(Walk {
                        passes,
                        end: WalkEnd::Deliver(Box::new(delivery)),
                    });
                }
            }
        }
        anyhow::bail!(
            "scenario {} walked more than {MAX_STEPS} steps",
            scenario.id
        )
    }

    /// The delivery of a webhook step for this pass, with its payload frozen at `now`. With
    /// derived ids (the queued path) the id derives from the pass and `now` (the walk's time,
    /// which every caller keeps the same for a walk made again: the first try's time on a
    /// repeated intake, the task's on a replayed advance), and the envelope id from the delivery
    /// id: a walk made again after a crash sends the same `id`, so the receiver can tell a
    /// repeat.
    pub(crate) fn new_delivery(
        &self,
        who: &Walker<'_>,
        scenario: &ScenarioRecord,
        step: &WebhookStep,
        now: jiff::Timestamp,
    ) -> Delivery {
        let (id, event_id) = if who.fresh_ids {
            let event_id = self.ports.ids.new_id("evt");
            let fresh = self.ports.ids.new_id("dlv");
            (
                delivery_id(&scenario.id, &step.id, now, &[&fresh]),
                event_id,
            )
        } else {
            let seq = who.seq.to_string();
            let id = delivery_id(
                &scenario.id,
                &step.id,
                now,
                &[who.enrollment_id, &seq, &step.id],
            );
            let event_id = derived_id("evt", &[&id]);
            (id, event_id)
        };
        let envelope = Envelope {
            id: &event_id,
            event: EVENT_NAME,
            timestamp: rfc3339_seconds(now),
            id_client: who.account,
            scenario: Some(ScenarioRef {
                id: &scenario.id,
                step_id: &step.id,
            }),
            data: Default::default(),
        };
        // past the bound: the delivery carries the error instead, and fails at its first
        // turn without a request (see `Delivery::unsendable`)
        let payload = render_payload(envelope, &step.fields, &step.additional, who.contact)
            .unwrap_or_else(|too_large| too_large.to_string());
        Delivery {
            id,
            account: who.account,
            scenario_id: scenario.id.clone(),
            step_id: step.id.clone(),
            contact_id: who.contact.id,
            handoff: Handoff {
                enrollment_id: who.enrollment_id.to_string(),
                next_step: step.next.clone(),
                seq: who.seq + 1,
            },
            url: step.url.to_string(),
            headers: step.headers.clone(),
            payload,
            status: DeliveryStatus::Pending,
            created_at: now,
            deadline: self.policy.deadline(now),
            next_attempt_at: Some(now),
            attempt_count: 0,
            attempts: Vec::new(),
        }
    }
}
