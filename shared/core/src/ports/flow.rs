//! The inline path's port: an event becomes its deliveries in **one** commit, and an attempt
//! (with the contact's move to the next step) in **one** more. No queued hop, no job rows:
//! due retries and waits are found from the rows themselves ([`FlowStore::due`]), and new work
//! is handed to the workers in memory ([`Dispatch`]), a hint the rows can always rebuild.
//!
//! Local mode implements it on SQLite; the AWS adapter still walks the queued path
//! ([`super::Queue`] + [`super::Task`]) until it implements this port too.

use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;

use super::{Enrollment, Pass, Scheduled, StoreResult};
use crate::domain::contact::Contact;
use crate::domain::delivery::{Attempt, Delivery, DeliveryStatus};
use crate::domain::event::IntakeAnswer;

/// What walking a scenario from one step decided, before anything is stored: the passes of
/// the instant steps (conditions, and the wait it stops at) and where the walk ended.
/// A webhook step's pass is its delivery; it is not repeated in `passes`.
#[derive(Debug, Clone, PartialEq)]
pub struct Walk {
    /// The passes of the instant steps walked (conditions, and the wait it stops at).
    pub passes: Vec<Pass>,
    /// Where the walk ended.
    pub end: WalkEnd,
}

/// Where a walk ended.
#[derive(Debug, Clone, PartialEq)]
pub enum WalkEnd {
    /// Reached a webhook step: its delivery (pending, due now); the enrollment awaits its
    /// first attempt there.
    Deliver(Box<Delivery>),
    /// Reached a wait step: the enrollment waits there until `until`, then goes on at `resume`.
    Wait {
        /// The wait step.
        step_id: String,
        /// When the wait ends.
        until: Timestamp,
        /// The step after the wait; `None`: the end.
        resume: Option<String>,
    },
    /// Walked past the last step.
    Complete,
    /// The scenario was archived (or no longer compiles): the contact stops where it is.
    Stop,
}

/// One enrollment an event creates, walked once already (stored with `seq` 1).
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedEnrollment {
    /// The enrollment, as it will be stored.
    pub enrollment: Enrollment,
    /// Whether its scenario lets a contact enter again.
    pub allow_reentry: bool,
    /// The walk from the scenario's start.
    pub walk: Walk,
}

/// Everything one event does, stored in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct IntakeCommit {
    /// The account.
    pub account: i64,
    /// The event id claimed by this commit (a firing's derived id for an occurrence).
    pub event_id: String,
    /// The contact's snapshot.
    pub contact: Contact,
    /// Store `contact` (an event), or only read it (an occurrence firing).
    pub store_contact: bool,
    /// When the snapshot was taken: an older one than the stored one is not stored, and the
    /// occurrences below are then left as they are (SPEC §3).
    pub occurred_at: Timestamp,
    /// The enrollments the event creates, walked.
    pub enrollments: Vec<PlannedEnrollment>,
    /// With the snapshot: the contact's pending occurrences of these (time-based) scenarios
    /// are replaced by `occurrences`.
    pub time_scenarios: Vec<String>,
    /// The contact's new pending occurrences.
    pub occurrences: Vec<Scheduled>,
    /// An occurrence firing: its row is removed and `occurrences` (its next one) stored, in this
    /// same transaction. When its row is gone already and the event id was never answered (a
    /// snapshot moved the date meanwhile), nothing is written: it does not fire. When the event
    /// id was answered before (a repeat), the row is removed again and nothing else happens.
    pub fired: Option<Scheduled>,
}

/// What [`FlowStore::commit_intake`] stored.
#[derive(Debug, Clone, PartialEq)]
pub struct IntakeDone {
    /// The answer: this commit's, or the one stored the first time this event id came.
    pub answer: IntakeAnswer,
    /// `true` when the event id had been answered before: nothing was written now.
    pub replay: bool,
    /// The deliveries created now (the re-entry rule may have dropped some planned ones).
    pub deliveries: Vec<Delivery>,
    /// The waits started now.
    pub waits: Vec<DueWork>,
    /// The occurrences scheduled now (none when the snapshot was older than the stored one).
    pub occurrences: Vec<Scheduled>,
}

/// An enrollment's move from `from_seq` to `from_seq + 1`, with the walk it made.
#[derive(Debug, Clone, PartialEq)]
pub struct Move {
    /// The enrollment that moves.
    pub enrollment_id: String,
    /// The `seq` it must still have (the compare-and-set).
    pub from_seq: u64,
    /// The walk it made.
    pub walk: Walk,
}

/// One attempt to record, with the delivery as it was read before it (its attempt count is
/// the compare-and-set), and the contact's move when this was the first attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptCommit {
    /// The delivery as read before the attempt.
    pub delivery: Delivery,
    /// The attempt made.
    pub attempt: Attempt,
    /// The delivery's status after it.
    pub status: DeliveryStatus,
    /// When to try again; `None` when settled.
    pub next_attempt_at: Option<Timestamp>,
    /// The contact's move, after the first attempt.
    pub then: Option<Move>,
}

/// What [`FlowStore::commit_attempt`] stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptRecorded {
    /// `false`: another worker recorded this attempt first; nothing was written.
    pub recorded: bool,
    /// The move was made now (`false` when there was none, or it had been made already).
    pub moved: bool,
}

/// Work that falls due at a time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DueWork {
    /// The next attempt of a pending delivery.
    Delivery {
        /// The delivery.
        id: String,
        /// When its next attempt is due.
        at: Timestamp,
    },
    /// The end of a wait.
    Wait {
        /// The waiting enrollment.
        enrollment_id: String,
        /// When the wait ends.
        at: Timestamp,
    },
    /// An occurrence of a time-based trigger.
    Occurrence(Box<Scheduled>),
}

impl DueWork {
    /// When the work falls due.
    pub fn at(&self) -> Timestamp {
        match self {
            DueWork::Delivery { at, .. } | DueWork::Wait { at, .. } => *at,
            DueWork::Occurrence(o) => o.at,
        }
    }

    /// The record it is about (two entries with the same key are the same work).
    pub fn key(&self) -> WorkKey {
        match self {
            DueWork::Delivery { id, .. } => WorkKey::Delivery(id.clone()),
            DueWork::Wait { enrollment_id, .. } => WorkKey::Wait(enrollment_id.clone()),
            DueWork::Occurrence(o) => WorkKey::Occurrence(o.clone()),
        }
    }
}

/// What a piece of due work is about, without its time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorkKey {
    /// A delivery, by id.
    Delivery(String),
    /// A waiting enrollment, by id.
    Wait(String),
    /// An occurrence.
    Occurrence(Box<Scheduled>),
}

/// A time-based scenario's activation still scheduling its occurrences: the next page of the
/// account's contacts starts at `cursor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backfill {
    /// The account.
    pub account: i64,
    /// The scenario that became active.
    pub scenario_id: String,
    /// Where the next page of contacts starts; `None`: the first.
    pub cursor: Option<String>,
}

/// A waiting enrollment, as [`FlowStore::waiting`] reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Waiting {
    /// The enrollment.
    pub enrollment: Enrollment,
    /// When its wait ends.
    pub until: Timestamp,
    /// The step it resumes at; `None`: the end.
    pub resume: Option<String>,
}

/// [`FlowStore::commit_intake`]'s answer when the account's active time-based scenarios at the
/// commit are not the ones the intake planned with (one was activated or archived meanwhile):
/// nothing was written; plan again.
#[derive(Debug, thiserror::Error)]
#[error("the active time-based scenarios changed while the event was planned")]
pub struct StalePlan;

/// The inline path's store: one commit per event, one per attempt, the rows as the timers' truth.
#[async_trait]
pub trait FlowStore: Send + Sync {
    /// One transaction. When the event id was answered before: that answer, nothing written.
    /// Otherwise: stores the snapshot; creates each planned enrollment (without `allow_reentry`
    /// only if the contact never entered that scenario) with its walk — passes, delivery or
    /// wait; stores and returns the answer, which lists the enrollments created.
    async fn commit_intake(&self, intake: &IntakeCommit) -> StoreResult<IntakeDone>;
    /// One transaction: the attempt and the delivery's new status and next attempt time, when
    /// the stored delivery is still pending with as many attempts as `delivery` has (a
    /// compare-and-set); then, in the same transaction, the move if it is still due.
    async fn commit_attempt(&self, attempt: &AttemptCommit) -> StoreResult<AttemptRecorded>;
    /// Makes a move when the enrollment is still at `from_seq` (a compare-and-set), with its
    /// walk; `false` when it had moved already (nothing written).
    async fn commit_move(&self, m: &Move) -> StoreResult<bool>;
    /// The enrollment when it is waiting, with when and where it resumes.
    async fn waiting(&self, enrollment_id: &str) -> StoreResult<Option<Waiting>>;
    /// Pending attempts, ends of waits and occurrences due at or before `until`, earliest
    /// first (at most `limit` of each kind).
    async fn due(&self, until: Timestamp, limit: usize) -> StoreResult<Vec<DueWork>>;
    /// The backfills not finished (the store starts one when a time-based scenario becomes
    /// active, in the same transaction; archiving it ends it and removes its occurrences).
    async fn backfills(&self) -> StoreResult<Vec<Backfill>>;
    /// Records a backfill's progress: `None` when it is finished.
    async fn backfill_done_until(&self, scenario_id: &str, cursor: Option<&str>)
    -> StoreResult<()>;
}

/// Hands new durable work to the workers in memory. Only a hint: work that is lost here (a
/// crash) is found again by [`FlowStore::due`].
pub trait Dispatch: Send + Sync {
    /// A delivery created now: attempt it at once.
    fn deliver_now(&self, delivery: Delivery);
    /// Work due later.
    fn due(&self, work: DueWork);
    /// Failed deliveries to resend now (one attempt each, SPEC §7).
    fn resend(&self, delivery_ids: Vec<String>);
}

/// How work moves from stage to stage.
#[derive(Clone)]
pub enum Pipeline {
    /// Each stage is a queued task (AWS today).
    Queued(Arc<dyn super::Queue>),
    /// One commit per event and one per attempt (local mode).
    Inline {
        /// The store that commits each event and each attempt.
        flow: Arc<dyn FlowStore>,
        /// Hands new work to the workers.
        dispatch: Arc<dyn Dispatch>,
    },
}
