//! The inline path (local mode): one commit per event, one per attempt, no queued hop.
//!
//! - **Intake**: the event's matching scenarios are walked in memory from their start through
//!   the instant steps; the snapshot, the enrollments, their passes and their deliveries or waits
//!   are stored in one commit; new deliveries go straight to the workers ([`Dispatch`]).
//! - **Attempt**: POST, then one commit records the attempt and, after the first one, the
//!   contact's move (walked in memory; no read at all when the webhook was the last step).
//! - **Timers**: a retry or the end of a wait is a row with a due time; the workers' timers are
//!   fed in memory and from [`FlowStore::due`], so a restart loses nothing.

use jiff::Timestamp;

use super::cache::Loaded;
use super::walk::Walker;
use super::{AppError, Hookline};
use crate::domain::contact::Contact;
use crate::domain::delivery::{Attempt, Delivery, DeliveryStatus};
use crate::domain::destination::{Answer, Health};
use crate::domain::event::{Event, IntakeAnswer};
use crate::domain::scenario::ScenarioStatus;
use crate::ports::{
    AttemptCommit, Dispatch, DueWork, Enrollment, EnrollmentState, FlowStore, IntakeCommit, Move,
    Pipeline, PlannedEnrollment, StalePlan, Walk, WalkEnd,
};

/// How a worker that asks destinations first runs an attempt.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gated {
    /// Before its due time: its destination has just become healthy again (SPEC §6a: what
    /// waits is released at once, not after each delivery's own backoff).
    pub early: bool,
}

/// What an attempt made: its answer for the destination, and where the delivery stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Made {
    /// What the answer says of the destination.
    pub answer: Answer,
    /// The attempt's error, for the destination's health view.
    pub error: Option<String>,
    /// When the attempt started.
    pub started: Timestamp,
    /// The delivery's status after it.
    pub status: DeliveryStatus,
    /// Its next attempt, when one is scheduled.
    pub next_attempt_at: Option<Timestamp>,
}

impl Hookline {
    fn inline(&self) -> anyhow::Result<(&dyn FlowStore, &dyn Dispatch)> {
        match &self.ports.pipeline {
            Pipeline::Inline { flow, dispatch } => Ok((flow.as_ref(), dispatch.as_ref())),
            Pipeline::Queued(_) => anyhow::bail!("this engine runs the queued path"),
        }
    }

    pub(crate) async fn intake_inline(
        &self,
        flow: &dyn FlowStore,
        dispatch: &dyn Dispatch,
        account: i64,
        event: Event,
    ) -> Result<IntakeAnswer, AppError> {
        let now = self.ports.clock.now();
        let mut enrollments = Vec::new();
        if event.kind != "contact_updated" {
            for scenario in self.active_scenarios(account, &[&event.kind]).await?.iter() {
                if !scenario
                    .record
                    .def
                    .trigger
                    .matches(&event.kind, &event.context)
                {
                    continue;
                }
                if let Some(planned) = self.plan_enrollment(scenario, &event.contact, now)? {
                    enrollments.push(planned);
                }
            }
        }
        // planned with the cached active time-based scenarios; the commit checks them against
        // the stored ones (an activation may have landed since), and a stale plan is made again
        let mut tries = 0;
        let done = loop {
            let (time_scenarios, occurrences) =
                self.plan_occurrences(account, &event.contact, now).await?;
            let commit = IntakeCommit {
                account,
                event_id: event.id.clone(),
                store_contact: true,
                occurred_at: event.occurred_at.unwrap_or(now),
                contact: event.contact.clone(),
                enrollments: enrollments.clone(),
                time_scenarios,
                occurrences,
                fired: None,
            };
            match flow.commit_intake(&commit).await {
                Err(e) if e.is::<StalePlan>() && tries < 5 => {
                    tries += 1;
                    self.scenario_changed(account, "");
                    tokio::time::sleep(std::time::Duration::from_millis(5 * tries)).await;
                }
                other => break other?,
            }
        };
        hand_over_intake(dispatch, done.deliveries, done.waits);
        for o in done.occurrences {
            if o.at <= now {
                dispatch.due(DueWork::Occurrence(Box::new(o))); // less than a day old: at once
            }
        }
        Ok(done.answer)
    }

    /// An enrollment of `contact` into `scenario`, walked from its start through the instant
    /// steps (`None`: the scenario no longer compiles).
    pub(crate) fn plan_enrollment(
        &self,
        scenario: &Loaded,
        contact: &Contact,
        now: Timestamp,
    ) -> anyhow::Result<Option<PlannedEnrollment>> {
        let record = &scenario.record;
        let Some(compiled) = &scenario.compiled else {
            return Ok(None); // logged when it was loaded
        };
        // Ids are new and time-ordered (cheap to index): the event's id, claimed in the same
        // commit, is what makes an intake happen once.
        let enrollment = Enrollment {
            id: self.ports.ids.new_id("enr"),
            account: record.account,
            scenario_id: record.id.clone(),
            contact_id: contact.id,
            seq: 0,
            step_id: record.def.start.clone(),
            state: EnrollmentState::Active,
            created_at: now,
        };
        let who = Walker {
            enrollment_id: &enrollment.id,
            account: record.account,
            contact,
            seq: 0,
            fresh_ids: true,
        };
        let walk = self.walk(&who, record, compiled, record.def.start.as_deref(), now)?;
        Ok(Some(PlannedEnrollment {
            enrollment,
            allow_reentry: record.def.allow_reentry,
            walk,
        }))
    }

    /// The due attempt of a delivery found by a timer: read it, then [`Hookline::attempt`].
    pub async fn attempt_stored(&self, delivery_id: &str) -> anyhow::Result<()> {
        match self.ports.deliveries.get(delivery_id).await? {
            Some(delivery) => self.attempt(delivery).await,
            None => {
                tracing::warn!(delivery_id, "a timer for an unknown delivery: dropped");
                Ok(())
            }
        }
    }

    /// Makes the due attempt of `delivery` (as stored) and records it in one commit, with the
    /// contact's move after the first attempt. Safe to run twice: the commit is a
    /// compare-and-set on the attempt count, so at worst the receiver sees the same `id` again.
    /// Never before its due time; after the deadline only when Hookline was not running at it
    /// (the last attempt is made late rather than skipped).
    pub async fn attempt(&self, delivery: Delivery) -> anyhow::Result<()> {
        self.attempt_now(delivery, Gated::default()).await.map(drop)
    }

    /// [`Self::attempt`] for a worker that asked the delivery's destination first (SPEC §6a):
    /// answers what the receiver's answer says of the destination, when a POST was made.
    pub async fn attempt_now(
        &self,
        delivery: Delivery,
        gated: Gated,
    ) -> anyhow::Result<Option<Made>> {
        let (flow, dispatch) = self.inline()?;
        let p = &self.ports;
        if delivery.status != DeliveryStatus::Pending {
            return Ok(None);
        }
        let start = p.clock.now();
        if let Some(next) = delivery.next_attempt_at
            && next > start
            && !gated.early
        {
            dispatch.due(DueWork::Delivery {
                id: delivery.id,
                at: next,
            });
            return Ok(None);
        }
        // The move does not depend on the answer: walked before the POST, so that nothing
        // that may fail stands between the POST and its commit.
        // (a first attempt held back moved the contact on already: this move is then refused
        // by the enrollment's sequence, and makes sure of it if that commit failed)
        let then = if delivery.attempt_count == 0 {
            Some(self.move_after_webhook(&delivery, start).await?)
        } else {
            None
        };
        let signer = self.signer(&delivery, None).await;
        let (attempt, status, next, answer) = self.post_judged(&delivery, start, &signer).await;
        let made = Made {
            answer,
            error: attempt.error.clone(),
            started: start,
            status,
            next_attempt_at: next,
        };
        let id = delivery.id.clone();
        let commit = AttemptCommit {
            delivery,
            attempt,
            status,
            next_attempt_at: next,
            then,
        };
        let recorded = commit_with_retries(flow, &commit).await?;
        if !recorded.recorded {
            return Ok(Some(made)); // another worker recorded this attempt
        }
        crate::metrics::webhook_settled(commit.status);
        if let Some(at) = next {
            dispatch.due(DueWork::Delivery { id, at });
        }
        if recorded.moved
            && let Some(m) = commit.then
        {
            hand_over(dispatch, m.enrollment_id, m.walk);
        }
        Ok(Some(made))
    }

    /// A delivery whose first attempt its destination holds back (SPEC §6a "scenarios keep
    /// moving"): the contact moves on now, as it would after the attempt. `false`: it had
    /// moved already (or the delivery is no first attempt).
    pub async fn move_on_held(&self, delivery: &Delivery) -> anyhow::Result<bool> {
        let (flow, dispatch) = self.inline()?;
        if delivery.attempt_count != 0 || delivery.status != DeliveryStatus::Pending {
            return Ok(false);
        }
        let m = self
            .move_after_webhook(delivery, self.ports.clock.now())
            .await?;
        let moved = flow.commit_move(&m).await?;
        if moved {
            hand_over(dispatch, m.enrollment_id, m.walk);
        }
        Ok(moved)
    }

    /// A held delivery whose deadline came while its destination still held it back: it fails
    /// without a request, with `not attempted before the deadline: destination <health>`
    /// (SPEC §6a), kept as the last entry of its attempts for display (no status, 0 ms).
    pub async fn fail_held(&self, delivery: Delivery, health: Health) -> anyhow::Result<()> {
        let (flow, dispatch) = self.inline()?;
        if delivery.status != DeliveryStatus::Pending {
            return Ok(());
        }
        let now = self.ports.clock.now();
        let then = if delivery.attempt_count == 0 {
            Some(self.move_after_webhook(&delivery, now).await?)
        } else {
            None
        };
        let error = format!(
            "not attempted before the deadline: destination {}",
            health.as_str()
        );
        // counted by the failed-deliveries metric filter (`$.fields.outcome`), as any failure
        tracing::warn!(delivery_id = %delivery.id, error, outcome = "failed", "delivery failed: nothing sent");
        let attempt = Attempt {
            at: now,
            status: None,
            error: Some(error),
            duration_ms: 0,
            response_snippet: None,
        };
        let commit = AttemptCommit {
            delivery,
            attempt,
            status: DeliveryStatus::Failed,
            next_attempt_at: None,
            then,
        };
        let recorded = commit_with_retries(flow, &commit).await?;
        if recorded.moved
            && let Some(m) = commit.then
        {
            hand_over(dispatch, m.enrollment_id, m.walk);
        }
        Ok(())
    }

    /// Where the contact goes once the first attempt is made: walked now, stored with it.
    async fn move_after_webhook(
        &self,
        delivery: &Delivery,
        now: jiff::Timestamp,
    ) -> anyhow::Result<Move> {
        let handoff = &delivery.handoff;
        let walk = self
            .walk_on(
                &handoff.enrollment_id,
                delivery.account,
                &delivery.scenario_id,
                delivery.contact_id,
                handoff.seq,
                handoff.next_step.as_deref(),
                now,
            )
            .await?;
        Ok(Move {
            enrollment_id: handoff.enrollment_id.clone(),
            from_seq: handoff.seq,
            walk,
        })
    }

    /// The walk of an enrollment already inside a scenario: it stops if the scenario was
    /// archived; the contact is read only when there is a step to walk.
    #[allow(clippy::too_many_arguments)]
    async fn walk_on(
        &self,
        enrollment_id: &str,
        account: i64,
        scenario_id: &str,
        contact_id: i64,
        seq: u64,
        from: Option<&str>,
        now: jiff::Timestamp,
    ) -> anyhow::Result<Walk> {
        let stop = Walk {
            passes: Vec::new(),
            end: WalkEnd::Stop,
        };
        let Some(scenario) = self.loaded_scenario(account, scenario_id).await? else {
            return Ok(stop);
        };
        if scenario.record.status == ScenarioStatus::Archived {
            return Ok(stop);
        }
        let Some(compiled) = &scenario.compiled else {
            return Ok(stop);
        };
        if from.is_none() {
            return Ok(Walk {
                passes: Vec::new(),
                end: WalkEnd::Complete,
            });
        }
        let Some(contact) = self.ports.contacts.get(account, contact_id).await? else {
            anyhow::bail!("contact {contact_id} of enrollment {enrollment_id} is missing");
        };
        // Ids derived from (enrollment, seq, step): a move replayed after an upgrade from the
        // queued path names the delivery that path may already have made.
        let who = Walker {
            enrollment_id,
            account,
            contact: &contact,
            seq,
            fresh_ids: false,
        };
        self.walk(&who, &scenario.record, compiled, from, now)
    }

    /// The end of a wait found by a timer: the contact walks on from the step after it.
    pub async fn resume(&self, enrollment_id: &str) -> anyhow::Result<()> {
        let (flow, dispatch) = self.inline()?;
        let Some(waiting) = flow.waiting(enrollment_id).await? else {
            return Ok(()); // moved already
        };
        let now = self.ports.clock.now();
        if waiting.until > now {
            dispatch.due(DueWork::Wait {
                enrollment_id: enrollment_id.to_string(),
                at: waiting.until,
            });
            return Ok(());
        }
        let e = &waiting.enrollment;
        let walk = self
            .walk_on(
                &e.id,
                e.account,
                &e.scenario_id,
                e.contact_id,
                e.seq,
                waiting.resume.as_deref(),
                now,
            )
            .await?;
        let m = Move {
            enrollment_id: e.id.clone(),
            from_seq: e.seq,
            walk,
        };
        if flow.commit_move(&m).await? {
            hand_over(dispatch, m.enrollment_id, m.walk);
        }
        Ok(())
    }
}

/// The POST is made: its commit is retried here (a few times, briefly) rather than the attempt
/// being repeated. Only if the store stays down does the attempt run again later (at least once).
async fn commit_with_retries(
    flow: &dyn FlowStore,
    commit: &AttemptCommit,
) -> anyhow::Result<crate::ports::AttemptRecorded> {
    let mut wait = std::time::Duration::from_millis(50);
    for _ in 0..5 {
        match flow.commit_attempt(commit).await {
            Ok(recorded) => return Ok(recorded),
            Err(e) => {
                tracing::warn!(delivery_id = %commit.delivery.id, error = %e, "recording an attempt failed; trying again");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
    }
    flow.commit_attempt(commit).await
}

/// Gives the workers what a stored walk started.
/// New deliveries to the workers at once, waits to their timers.
pub(crate) fn hand_over_intake(
    dispatch: &dyn Dispatch,
    deliveries: Vec<Delivery>,
    waits: Vec<DueWork>,
) {
    for delivery in deliveries {
        dispatch.deliver_now(delivery);
    }
    for wait in waits {
        dispatch.due(wait);
    }
}

fn hand_over(dispatch: &dyn Dispatch, enrollment_id: String, walk: Walk) {
    match walk.end {
        WalkEnd::Deliver(delivery) => dispatch.deliver_now(*delivery),
        WalkEnd::Wait { until, .. } => dispatch.due(DueWork::Wait {
            enrollment_id,
            at: until,
        }),
        WalkEnd::Complete | WalkEnd::Stop => {}
    }
}
