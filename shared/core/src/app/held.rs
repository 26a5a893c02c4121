//! Destinations on the queued path (SPEC §6a, AWS): before each attempt the runtime's
//! [`crate::ports::DestinationGate`] is asked; a delivery it holds back is queued again for the time it
//! names, as the same task (same attempt number: waiting is not an attempt), with the pace's
//! start it reserved. A first attempt held back hands its contact back at once ("scenarios
//! keep moving"), is stored as its pass (pending, no attempt) and queued as a stored
//! delivery's attempt whose task says the contact moved, so that the attempt, when made, does
//! not hand it back twice. A held delivery whose deadline comes while its destination still holds it back fails
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

/// How long before its reserved start a held delivery comes back.
pub const EARLY: Duration = Duration::from_secs(1);

/// What a deliver task says of its holds.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Held {
    /// The start its destination's pace reserved for it.
    pub slot: Option<Timestamp>,
    /// When its contact was handed back (a first attempt held back).
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
    /// A reserved start comes back [`EARLY`] before it (a queue's delay is whole seconds, and
    /// the gate waits the rest in-process, so that it starts on time).
    fn due(&self, now: Timestamp, deadline: Timestamp) -> Timestamp {
        let until = if self.reserved {
            self.until
                .checked_sub(jiff::SignedDuration::try_from(EARLY).unwrap_or_default())
                .unwrap_or(self.until)
        } else {
            self.until
        };
        until.min(deadline).min(add(now, MAX_HOLD)).max(now)
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
            return Ok(Gate::Go {
                probe: false,
                at: self.ports.clock.now(),
            });
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

    /// Waits for the start a destination gave (`at`, within a moment), then answers the
    /// attempt's start: now.
    pub(crate) async fn start_at(&self, at: Timestamp) -> Timestamp {
        let now = self.ports.clock.now();
        if let Ok(wait) = std::time::Duration::try_from(at.duration_since(now))
            && !wait.is_zero()
        {
            tokio::time::sleep(wait).await;
        }
        self.ports.clock.now()
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
        held: Held,
        wait: Wait,
    ) -> anyhow::Result<Outcome> {
        let p = &self.ports;
        let now = p.clock.now();
        let made = delivery.attempt_count;
        // a delivery stored before its first attempt (held, or by an older version): its
        // contact moves on now, once
        let moved_at = match held.moved_at {
            None if made == 0 => {
                self.hand_back(delivery, now).await?;
                Some(now)
            }
            other => other,
        };
        if now >= delivery.deadline {
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
            moved_at,
        };
        let at = wait.due(now, delivery.deadline);
        self.queue()?.enqueue(&task, at).await?;
        tracing::debug!(delivery_id = %delivery.id, until = %at, health = wait.health.as_str(), "held back by its destination");
        Ok(Outcome::Done)
    }

    /// A first attempt held back (its delivery rides in its message): the contact is handed
    /// back now, and the delivery stored as a pass, pending with no attempt (the statistics
    /// count it), its first attempt queued as a stored delivery's. At its deadline it is
    /// stored failed instead. Order: the store, then the message for the attempt (so that it
    /// never comes before the delivery is there); a crash between them leaves the first
    /// message to come again, which finds the delivery stored without an attempt and goes on
    /// as that message would ([`Self::deliver_first`]).
    pub(super) async fn hold_first(
        &self,
        delivery: &Delivery,
        pass: &Pass,
        wait: Wait,
    ) -> anyhow::Result<Outcome> {
        let p = &self.ports;
        let now = p.clock.now();
        self.hand_back(delivery, now).await?;
        let mut stored = delivery.clone();
        if now >= delivery.deadline {
            stored.attempts = stored.kept_with(&not_attempted(now, wait.health));
            stored.attempt_count = 1;
            stored.status = DeliveryStatus::Failed;
            stored.next_attempt_at = None;
            p.deliveries.record_pass(pass, Some(&stored)).await?;
            tracing::info!(delivery_id = %delivery.id, health = wait.health.as_str(), "held past its deadline: failed");
            return Ok(Outcome::Done);
        }
        let at = wait.due(now, delivery.deadline);
        stored.next_attempt_at = Some(at);
        p.deliveries.record_pass(pass, Some(&stored)).await?;
        let task = Task::DeliverV1 {
            delivery_id: delivery.id.clone(),
            attempt: Some(0),
            deadline: None,
            slot: wait.slot(),
            moved_at: Some(now),
        };
        self.queue()?.enqueue(&task, at).await?;
        tracing::debug!(delivery_id = %delivery.id, until = %at, health = wait.health.as_str(), "first attempt held back by its destination; contact moved on");
        Ok(Outcome::Done)
    }
}
