//! Webhook delivery on the queued path (AWS): make the due attempt, schedule the retry or settle the delivery, and
//! hand the contact back to its scenario after the first attempt.

use std::time::Duration;

use super::{Hookline, Outcome, held};
use crate::domain::delivery::{Delivery, DeliveryStatus};
use crate::domain::time::add;
use crate::ports::{Gate, Task};

/// How soon a message that arrived before its previous attempt was recorded looks again.
const NOT_YET_RECORDED: Duration = Duration::from_secs(5);
/// Past the deadline by this much, such a message stops looking.
const NOT_RECORDED_GIVE_UP: Duration = Duration::from_secs(3600);

/// An attempt made: its start, the attempt to record, the delivery's new status and next
/// attempt time.
type Posted = (
    jiff::Timestamp,
    crate::domain::delivery::Attempt,
    DeliveryStatus,
    Option<jiff::Timestamp>,
);

impl Hookline {
    /// Makes the attempt a deliver message is for, safe to run twice or after a crash anywhere.
    ///
    /// - A message names the attempt it is for (`attempt`: how many were made before it). One
    ///   whose attempt was made already is dropped: a redelivered message never starts a second
    ///   retry chain.
    /// - Order of writes: POST; the hand-back after the first attempt (of a delivery stored
    ///   before it: see [`Self::deliver_first`] for the others) and the message for the next
    ///   attempt are queued; then the attempt is recorded (a compare-and-set on the attempt
    ///   count). A crash before the record repeats the POST (at least once) and queues the next
    ///   message again — the copy that runs second finds its attempt made and is dropped.
    /// - Never before the due time (a timer that fired early waits the rest); after the
    ///   deadline only when the message came late (the last attempt is made late, never skipped).
    /// - A retry that comes before its delivery is stored (queued by a first attempt that has
    ///   not recorded itself yet: it carries the `deadline`) looks again shortly.
    pub(crate) async fn deliver(
        &self,
        delivery_id: &str,
        attempt: Option<u32>,
        deadline: Option<jiff::Timestamp>,
        held: held::Held,
    ) -> anyhow::Result<Outcome> {
        let p = &self.ports;
        if queued_before_step_ids(delivery_id) {
            return Ok(Outcome::Done);
        }
        let Some(delivery) = p.deliveries.get(delivery_id).await? else {
            let now = p.clock.now();
            if let Some(deadline) = deadline
                && now <= add(deadline, NOT_RECORDED_GIVE_UP)
            {
                // the retry of a first attempt whose delivery is being stored: look again
                return Ok(Outcome::RetryAt(add(now, NOT_YET_RECORDED)));
            }
            tracing::warn!(delivery_id, "deliver for an unknown delivery: dropped");
            return Ok(Outcome::Done);
        };
        if delivery.status != DeliveryStatus::Pending {
            return Ok(Outcome::Done);
        }
        let made = delivery.attempt_count;
        let start = p.clock.now();
        match attempt {
            Some(n) if n < made => {
                tracing::debug!(
                    delivery_id,
                    attempt = n,
                    "attempt made already: message dropped"
                );
                return Ok(Outcome::Done);
            }
            Some(n) if n > made => {
                // queued just before its previous attempt was recorded: look again shortly,
                // unless that record is not coming (its message went to the dead-letter queue)
                if start > add(delivery.deadline, NOT_RECORDED_GIVE_UP) {
                    tracing::error!(
                        delivery_id,
                        "the previous attempt was never recorded: message dropped"
                    );
                    return Ok(Outcome::Done);
                }
                return Ok(Outcome::RetryAt(add(start, NOT_YET_RECORDED)));
            }
            _ => {}
        }
        if let Some(next) = delivery.next_attempt_at
            && next > start
        {
            return Ok(Outcome::RetryAt(next)); // early: the rest is waited
        }
        let (start, attempt, status, next) =
            match self.gated_post(&delivery, held.slot, None).await? {
                Ok(posted) => posted,
                Err(wait) => return self.hold_stored(&delivery, deadline, held, wait).await,
            };
        if made == 0 && held.moved_at.is_none() {
            // (a first attempt held back handed its contact back when it was held)
            self.hand_back(&delivery, start).await?;
        }
        if let Some(at) = next {
            let task = Task::DeliverV1 {
                delivery_id: delivery.id.clone(),
                attempt: Some(made + 1),
                deadline: None,
                slot: None,
                moved_at: None,
            };
            self.queue()?.enqueue(&task, at).await?;
        }
        if p.deliveries
            .record_attempt(&delivery, Some(&attempt), status, next)
            .await?
        {
            crate::metrics::webhook_settled(status);
        }
        Ok(Outcome::Done)
    }

    /// The first attempt of a delivery its message carries (not stored yet). Order: POST; the
    /// hand-back and the message for the next attempt are queued; then the delivery is stored
    /// with the attempt's outcome, as its pass (one conditional put: once, whoever comes
    /// first). A copy of the message that finds the delivery stored is dropped; a crash before
    /// the store repeats the POST with the same bytes (at least once), as in [`Self::deliver`].
    pub(crate) async fn deliver_first(
        &self,
        delivery: &Delivery,
        pass: &crate::ports::Pass,
        scenario_at: Option<jiff::Timestamp>,
    ) -> anyhow::Result<Outcome> {
        let p = &self.ports;
        if queued_before_step_ids(&delivery.id) {
            return Ok(Outcome::Done);
        }
        // a copy redelivered after the first was handled (SQS: after the visibility timeout,
        // minutes) finds it stored; two copies at once may both send it (same bytes, same id)
        // and only one is stored
        if p.deliveries.is_recorded(&delivery.id).await? {
            // stored already: attempted by another copy, or held back by its destination
            // (SPEC §6a) and this copy came again after a crash: it goes on as the stored
            // delivery's first attempt (its contact moved on when it was held)
            let held_first = p
                .deliveries
                .get(&delivery.id)
                .await?
                .is_some_and(|d| d.attempt_count == 0 && d.status == DeliveryStatus::Pending);
            if held_first {
                let moved = held::Held {
                    slot: None,
                    moved_at: Some(delivery.created_at),
                };
                return Box::pin(self.deliver(&delivery.id, Some(0), None, moved)).await;
            }
            return Ok(Outcome::Done);
        }
        let (start, attempt, status, next) =
            match self.gated_post(delivery, None, scenario_at).await? {
                Ok(posted) => posted,
                Err(wait) => return self.hold_first(delivery, pass, wait).await,
            };
        self.hand_back(delivery, start).await?;
        if let Some(at) = next {
            // queued before the delivery is stored: it may come first, and then waits
            let task = Task::DeliverV1 {
                delivery_id: delivery.id.clone(),
                attempt: Some(1),
                deadline: Some(delivery.deadline),
                slot: None,
                moved_at: None,
            };
            self.queue()?.enqueue(&task, at).await?;
        }
        let mut attempted = delivery.clone();
        attempted.attempts = attempted.kept_with(&attempt);
        attempted.attempt_count = 1;
        attempted.status = status;
        attempted.next_attempt_at = next;
        if p.deliveries.record_pass(pass, Some(&attempted)).await? {
            crate::metrics::webhook_settled(status);
        }
        Ok(Outcome::Done)
    }

    /// The attempt of `delivery` if its destination lets it start (SPEC §6a): the POST at the
    /// start the gate gave (`slot`: one reserved before), judged, and the answer told to the
    /// destination; or why and until when it is held back. The step's secret is read before
    /// the gate: nothing slow stands between the start and the request leaving (a paced start
    /// kept is a paced request).
    async fn gated_post(
        &self,
        delivery: &Delivery,
        slot: Option<jiff::Timestamp>,
        scenario_at: Option<jiff::Timestamp>,
    ) -> anyhow::Result<Result<Posted, held::Wait>> {
        let signer = self.signer(delivery, scenario_at).await;
        let at = match self.gate(delivery, slot).await? {
            Gate::Go { at, .. } => at,
            Gate::Wait {
                until,
                reserved,
                health,
            } => {
                return Ok(Err(held::Wait {
                    until,
                    reserved,
                    health,
                }));
            }
        };
        let start = self.start_at(at).await;
        let (attempt, status, next, answer) = self.post_judged(delivery, start, &signer).await;
        self.gate_finished(delivery, start, answer, attempt.error.as_deref())
            .await;
        Ok(Ok((start, attempt, status, next)))
    }

    /// The contact moves on once the first attempt has been made, whatever its outcome: handed
    /// back to scenario-advance when there is a next step. A webhook that is the last step
    /// completed its enrollment when the delivery was made (`place_after`): nothing to do.
    /// The next walk's time is the first attempt's start (`started`): every copy of the
    /// hand-back message carries it, so an advance handed over again names the same delivery.
    /// (Only a redelivery of the first attempt's own message, minutes later, starts again: by
    /// then the first hand-back has moved the enrollment and the second is dropped.)
    pub(super) async fn hand_back(
        &self,
        delivery: &Delivery,
        started: jiff::Timestamp,
    ) -> anyhow::Result<()> {
        let p = &self.ports;
        let handoff = &delivery.handoff;
        if handoff.next_step.is_none() {
            return Ok(());
        }
        let task = Task::AdvanceV1 {
            enrollment_id: handoff.enrollment_id.clone(),
            step_id: handoff.next_step.clone(),
            seq: handoff.seq,
            not_before: None,
            at: Some(started),
        };
        self.queue()?.enqueue(&task, p.clock.now()).await?;
        Ok(())
    }
}

/// A message queued by a version whose delivery ids named no step: its delivery cannot be
/// found nor stored (a store keys a delivery by what its id names), and a POST without a record
/// would repeat — it is dropped unsent, logged (drain the deliver queue before such an upgrade).
fn queued_before_step_ids(delivery_id: &str) -> bool {
    let legacy = crate::domain::ids::delivery_step_key(delivery_id).is_none();
    if legacy {
        tracing::error!(
            delivery_id,
            "a message queued before delivery ids named their step: dropped unsent"
        );
    }
    legacy
}
