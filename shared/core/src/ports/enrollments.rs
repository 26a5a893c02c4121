//! The enrollments' port: a contact's pass through a scenario (one entry per contact unless
//! re-entry is allowed), and the stored answers to events.

use async_trait::async_trait;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::StoreResult;
use crate::domain::event::IntakeAnswer;

/// Where an enrollment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnrollmentState {
    /// Moving through steps (or waiting for a queued advance).
    Active,
    /// At a wait step, until its time (inline path).
    Waiting,
    /// Waiting for the first attempt of a delivery.
    AwaitingDelivery,
    /// Went through to the end.
    Completed,
    /// The scenario was archived while the contact was inside.
    Stopped,
}

impl EnrollmentState {
    /// The state as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            EnrollmentState::Active => "active",
            EnrollmentState::Waiting => "waiting",
            EnrollmentState::AwaitingDelivery => "awaiting_delivery",
            EnrollmentState::Completed => "completed",
            EnrollmentState::Stopped => "stopped",
        }
    }

    /// The state stored as `s`, if it is one.
    pub fn parse(s: &str) -> Option<EnrollmentState> {
        [
            Self::Active,
            Self::Waiting,
            Self::AwaitingDelivery,
            Self::Completed,
            Self::Stopped,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }

    /// Completed or stopped: the enrollment moves no more.
    pub fn is_final(self) -> bool {
        matches!(self, EnrollmentState::Completed | EnrollmentState::Stopped)
    }
}

/// One contact's pass through one scenario. `seq` counts its moves: every handler that moves
/// it does so with a compare-and-set on `seq`, so a repeated message moves it once.
#[derive(Debug, Clone, PartialEq)]
pub struct Enrollment {
    /// The enrollment id (`enr_…`, or derived from the entry when re-entry is not allowed).
    pub id: String,
    /// The account.
    pub account: i64,
    /// The scenario the contact is in.
    pub scenario_id: String,
    /// The contact.
    pub contact_id: i64,
    /// How many times it has moved (the compare-and-set of every move).
    pub seq: u64,
    /// The step it is at; `None` at the end.
    pub step_id: Option<String>,
    /// Where it stands.
    pub state: EnrollmentState,
    /// When the contact entered the scenario.
    pub created_at: Timestamp,
}

/// What [`EnrollmentStore::create`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrollOutcome {
    /// Created now.
    Created,
    /// This very enrollment (same id) exists: a repeated intake.
    AlreadyExists,
    /// The contact already entered this scenario and re-entry is not allowed.
    AlreadyEntered,
}

/// Enrollments (with the one-entry-per-contact rule) and event answers.
#[async_trait]
pub trait EnrollmentStore: Send + Sync {
    /// The stored answer to an event id, if it was answered.
    async fn event_answer(&self, account: i64, event_id: &str)
    -> StoreResult<Option<IntakeAnswer>>;
    /// Stores the answer unless one is there; returns the stored one either way.
    async fn save_event_answer(
        &self,
        account: i64,
        answer: &IntakeAnswer,
    ) -> StoreResult<IntakeAnswer>;
    /// Creates an enrollment. Without `allow_reentry`, at most one per (scenario, contact); its
    /// id is then made by [`crate::domain::ids::entry_enrollment_id`] (a store may key it by
    /// the entry).
    async fn create(
        &self,
        enrollment: &Enrollment,
        allow_reentry: bool,
    ) -> StoreResult<EnrollOutcome>;
    /// One enrollment by id.
    async fn get(&self, id: &str) -> StoreResult<Option<Enrollment>>;
    /// Moves the enrollment from `from_seq` to `from_seq + 1` with a new step and state;
    /// `false` when its `seq` was not `from_seq`.
    async fn advance(
        &self,
        id: &str,
        from_seq: u64,
        step_id: Option<&str>,
        state: EnrollmentState,
    ) -> StoreResult<bool>;
}
