//! Destinations on the queued path (SPEC §6a, AWS): before each attempt the runtime's
//! [`DestinationGate`] is asked; a delivery it holds back is queued again for the time it
//! names, as the same task (same attempt number: waiting is not an attempt), with the pace's
//! start it reserved. A first attempt held back hands its contact back at once ("scenarios
//! keep moving") and says so in its task, so that the attempt, when made, does not hand it back
//! twice. A held delivery whose deadline comes while its destination still holds it back fails
//! with `not attempted before the deadline: destination <health>`, kept as its last attempt
//! (no status, 0 ms), as local mode does.

use std::time::Duration;

use jiff::Timestamp;

use super::{Hookline, Outcome};
use crate::domain::delivery::{Attempt, Delivery, DeliveryStatus};
use crate::domain::destination::{Answer, Health};
use crate::domain::time::add;
use crate::ports::{Gate, Pass, Task};

/// The longest a held delivery is queued away at once (SQS's longest delay: a hold never
/// needs a schedule); one that comes back before its time is held again.
pub const MAX_HOLD: Duration = Duration::from_secs(900);

/// What a first attempt's task says of its holds.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Held {
    /// The start its destination's pace reserved for it.
    pub slot: Option<Timestamp>,
    /// When its contact was handed back (held before its first attempt).
    pub moved_at: Option<Timestamp>,
}

/// A [`Gate::Wait`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Wait {
    pub until: Timestamp,
    pub reserved: bool,
    pub health: Health,
}

impl Wait {
    /// When the held task comes back: at the time named, never past the deadline (it fails
    /// then, or is attempted if its destination allows it), at most [`MAX_HOLD`] away.
    fn due(&self, now: Timestamp, deadline: Timestamp) -> Timestamp {
        self.until.min(deadline).min(add(now, MAX_HOLD)).max(now)
    }

    fn slot(&self) -> Option<Timestamp> {
        self.reserved.then_some(self.until)
    }
}

/// The entry a held delivery that reached its deadline keeps as its last attempt.
fn not_attempted(now: Timestamp, health: Health) -> Attempt {
    Attempt {
        at: now,
        status: None,
        error: Some(format!(
            "not attempted before the deadline: destination {}",
            health.as_str()
        )),
        duration_ms: 0,
        response_snippet: None,
    }
}

impl Hookline {
    /// Asks the delivery's destination whether its attempt may start (always yes when the
    /// runtime has no shared gate).
    pub(crate) async fn gate(
        &self,
        delivery: &Delivery,
        slot: Option<Timestamp>,
    ) -> anyhow::Result<Gate> {
        let Some(gate) = self.ports.destinations.gate() else {
            return Ok(Gate::Go { probe: false });
        };
        let limit = self.url_rate_limit(delivery.account, &delivery.url).await?;
        gate.admit(
            delivery.account,
            &delivery.url,
            limit,
            slot,
            delivery.deadline,
        )
        .await
    }

    /// Tells the delivery's destination how its attempt ended. A failure to keep it is logged,
    /// never fails the attempt's record.
    pub(crate) async fn gate_finished(
        &self,
        delivery: &Delivery,
        started: Timestamp,
        answer: Answer,
        error: Option<&str>,
    ) {
        if let Some(gate) = self.ports.destinations.gate()
            && let Err(e) = gate
                .finished(delivery.account, &delivery.url, started, answer, error)
                .await
        {
            tracing::warn!(delivery_id = %delivery.id, error = %e, "the destination's state could not be kept");
        }
    }

    /// A stored delivery held back: queued again as the same attempt, or failed at its deadline.
    pub(super) async fn hold_stored(
        &self,
        delivery: &Delivery,
        task_deadline: Option<Timestamp>,
        wait: Wait,
    ) -> anyhow::Result<Outcome> {
        let p = &self.ports;
        let now = p.clock.now();
        let made = delivery.attempt_count;
        if now >= delivery.deadline {
            if made == 0 {
                self.hand_back(delivery, now).await?;
            }
            let attempt = not_attempted(now, wait.health);
            p.deliveries
                .record_attempt(delivery, Some(&attempt), DeliveryStatus::Failed, None)
                .await?;
            tracing::info!(delivery_id = %delivery.id, health = wait.health.as_str(), "held past its deadline: failed");
            return Ok(Outcome::Done);
        }
        let task = Task::DeliverV1 {
            delivery_id: delivery.id.clone(),
            attempt: Some(made),
            deadline: task_deadline,
            slot: wait.slot(),
        };
        let at = wait.due(now, delivery.deadline);
        self.queue()?.enqueue(&task, at).await?;
        tracing::debug!(delivery_id = %delivery.id, until = %at, health = wait.health.as_str(), "held back by its destination");
        Ok(Outcome::Done)
    }

    /// A first attempt held back: its contact is handed back now (once), and the task queued
    /// again; at its deadline it is stored failed, as its pass.
    pub(super) async fn hold_first(
        &self,
        delivery: &Delivery,
        pass: &Pass,
        scenario_at: Option<Timestamp>,
        held: Held,
        wait: Wait,
    ) -> anyhow::Result<Outcome> {
        let p = &self.ports;
        let now = p.clock.now();
        if held.moved_at.is_none() {
            self.hand_back(delivery, now).await?;
        }
        if now >= delivery.deadline {
            let mut failed = delivery.clone();
            failed.attempts = failed.kept_with(&not_attempted(now, wait.health));
            failed.attempt_count = 1;
            failed.status = DeliveryStatus::Failed;
            failed.next_attempt_at = None;
            p.deliveries.record_pass(pass, Some(&failed)).await?;
            tracing::info!(delivery_id = %delivery.id, health = wait.health.as_str(), "held past its deadline: failed");
            return Ok(Outcome::Done);
        }
        let task = Task::DeliverFirstV1 {
            delivery: Box::new(delivery.clone()),
            pass: pass.clone(),
            scenario_at,
            slot: wait.slot(),
            moved_at: Some(held.moved_at.unwrap_or(now)),
        };
        let at = wait.due(now, delivery.deadline);
        self.queue()?.enqueue(&task, at).await?;
        tracing::debug!(delivery_id = %delivery.id, until = %at, health = wait.health.as_str(), "first attempt held back by its destination; contact moved on");
        Ok(Outcome::Done)
    }
}
