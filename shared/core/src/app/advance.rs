//! Scenario advancement on the queued path (AWS): run conditions and waits, create deliveries,
//! finish enrollments, one queued task per move.

use std::time::Duration;

use super::walk::Walker;
use super::{Hookline, Outcome};
use crate::domain::contact::Contact;
use crate::domain::scenario::{ScenarioRecord, ScenarioStatus};
use crate::domain::time::add;
use crate::ports::{Enrollment, EnrollmentState, Pass, Task, Walk, WalkEnd};

/// How soon to look again at a task whose enrollment has not yet made the move that queued it.
const NOT_YET: Duration = Duration::from_millis(200);

impl Hookline {
    /// Moves enrollment `enrollment_id`, at `seq`, into `step_id` and on through conditions until
    /// a wait, a webhook or the end. Idempotent: passes are keyed by (enrollment, seq, step), the
    /// delivery id derives from the same and from the walk's time `walk_at` (carried by the
    /// task: the same in every copy), and the enrollment moves with a compare-and-set on `seq`.
    /// Order of writes: record, enqueue, then move — a crash before the move replays the task.
    pub(crate) async fn advance(
        &self,
        enrollment_id: &str,
        step_id: Option<&str>,
        seq: u64,
        walk_at: Option<jiff::Timestamp>,
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
        self.advance_with(&enrollment, scenario, None, step_id, seq, walk_at)
            .await
    }

    /// [`Hookline::advance`] once the enrollment (at `seq`) and its scenario are read; the
    /// contact is read only when the walk needs it and the caller does not already have it
    /// (intake, which just stored it).
    pub(crate) async fn advance_with(
        &self,
        enrollment: &Enrollment,
        scenario: Option<ScenarioRecord>,
        contact: Option<&Contact>,
        step_id: Option<&str>,
        seq: u64,
        walk_at: Option<jiff::Timestamp>,
    ) -> anyhow::Result<Outcome> {
        let p = &self.ports;
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
        let read;
        let contact = match contact {
            Some(c) => c,
            None => {
                let Some(c) = p
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
                read = c;
                &read
            }
        };
        // the walk's time: the same in every copy of the task (a wait's end, or the first
        // attempt's start of the webhook that handed the contact back), so a walk made again
        // after a crash before the move names the same delivery and sends the same bytes
        let now = walk_at.unwrap_or_else(|| p.clock.now());
        let who = Walker {
            enrollment_id: &enrollment.id,
            account: enrollment.account,
            contact,
            seq,
            fresh_ids: false,
        };
        let mut walk = self.walk(&who, &scenario, &compiled, step_id, now)?;
        if let WalkEnd::Deliver(d) = &mut walk.end {
            // its 12 hours count from when it is made at the latest (a move that ran late,
            // behind a backlog, keeps its whole window); the first stored copy's is kept
            d.deadline = d.deadline.max(self.policy.deadline(p.clock.now()));
        }
        let (step, state) = place_after(&walk);
        self.record_walk(enrollment, &scenario, seq, walk, now)
            .await?;
        p.enrollments
            .advance(&enrollment.id, seq, step.as_deref(), state)
            .await?;
        Ok(Outcome::Done)
    }
}

impl Hookline {
    /// The records a walk of `enrollment` from `seq` makes: its passes, then the message of its
    /// delivery's first attempt (carrying the delivery, stored by webhook-deliver with the
    /// attempt's outcome) or the task that ends its wait. Each is keyed by (enrollment, seq,
    /// step), so making them again changes nothing (a queued task again is dropped or finds the
    /// move made). The enrollment's own move is the caller's.
    pub(crate) async fn record_walk(
        &self,
        enrollment: &Enrollment,
        scenario: &ScenarioRecord,
        seq: u64,
        walk: Walk,
        now: jiff::Timestamp,
    ) -> anyhow::Result<()> {
        let p = &self.ports;
        for pass in &walk.passes {
            p.deliveries.record_pass(pass, None).await?;
        }
        let queue = self.queue()?;
        match walk.end {
            WalkEnd::Complete | WalkEnd::Stop => {}
            WalkEnd::Wait { until, resume, .. } => {
                let task = Task::AdvanceV1 {
                    enrollment_id: enrollment.id.clone(),
                    step_id: resume,
                    seq: seq + 1,
                    not_before: Some(until),
                    at: None,
                };
                queue.enqueue(&task, until).await?;
            }
            WalkEnd::Deliver(delivery) => {
                let pass = Pass {
                    key: format!("{}:{seq}:{}", enrollment.id, delivery.step_id),
                    account: enrollment.account,
                    scenario_id: scenario.id.clone(),
                    step_id: delivery.step_id.clone(),
                    contact_id: enrollment.contact_id,
                    at: now,
                    first_for_contact: !scenario.def.allow_reentry,
                };
                // the first attempt's message carries the delivery (stored once, after the
                // attempt). The deliver queue takes 1 MiB a message: any delivery DynamoDB can
                // store (400 KB an item), its payload escaped once more, fits.
                let task = Task::DeliverFirstV1 {
                    delivery,
                    pass,
                    scenario_at: Some(scenario.updated_at),
                };
                queue.enqueue(&task, now).await?;
            }
        }
        Ok(())
    }
}

/// Where a walk leaves its enrollment: the step it waits at (a webhook's first attempt, a
/// wait) and its state, or the end. A webhook that is the scenario's last step ends the
/// enrollment now: the contact has nowhere to move on to after the first attempt, so
/// webhook-deliver writes nothing to the enrollment (one write less per webhook than waiting at
/// the step and completing after the attempt).
pub(crate) fn place_after(walk: &Walk) -> (Option<String>, EnrollmentState) {
    match &walk.end {
        WalkEnd::Complete | WalkEnd::Stop => (None, EnrollmentState::Completed),
        WalkEnd::Wait { step_id, .. } => (Some(step_id.clone()), EnrollmentState::Active),
        WalkEnd::Deliver(d) if d.handoff.next_step.is_none() => (None, EnrollmentState::Completed),
        WalkEnd::Deliver(d) => (Some(d.step_id.clone()), EnrollmentState::AwaitingDelivery),
    }
}
