//! `POST /v1/events`: refresh the snapshot and enroll the contact in every matching scenario.

use serde_json::Value;

use super::{AppError, Hookline};
use crate::domain::event::{EnrollmentRef, EventIn, IntakeAnswer};
use crate::domain::ids::derived_id;
use crate::ports::{EnrollOutcome, Enrollment, EnrollmentState, Task};

impl Hookline {
    /// Idempotent by event `id`: the same id again enrolls nobody twice and gets the first answer.
    /// Every write is keyed (enrollment ids derive from the event and scenario), so a retry after
    /// a crash between any two writes finishes the work instead of repeating it.
    pub async fn intake(&self, account: i64, body: Value) -> Result<IntakeAnswer, AppError> {
        let event = crate::domain::from_json_value::<EventIn>(body, "")?.validate()?;
        let p = &self.ports;
        if let Some(answer) = p.enrollments.event_answer(account, &event.id).await? {
            return Ok(answer);
        }
        p.contacts.put(account, &event.contact).await?;
        let mut enrollments = Vec::new();
        if event.kind != "contact_updated" {
            let now = p.clock.now();
            for scenario in p.scenarios.active_for_trigger(account, &event.kind).await? {
                if !scenario.def.trigger.matches(&event.kind, &event.context) {
                    continue;
                }
                let enrollment = Enrollment {
                    id: derived_id("enr", &[&account.to_string(), &event.id, &scenario.id]),
                    account,
                    scenario_id: scenario.id.clone(),
                    contact_id: event.contact.id,
                    seq: 0,
                    step_id: scenario.def.start.clone(),
                    state: EnrollmentState::Active,
                    created_at: now,
                };
                match p
                    .enrollments
                    .create(&enrollment, scenario.def.allow_reentry)
                    .await?
                {
                    EnrollOutcome::AlreadyEntered => continue,
                    EnrollOutcome::Created | EnrollOutcome::AlreadyExists => {}
                }
                let task = Task::AdvanceV1 {
                    enrollment_id: enrollment.id.clone(),
                    step_id: scenario.def.start.clone(),
                    seq: 0,
                };
                p.queue.enqueue(&task, now).await?;
                enrollments.push(EnrollmentRef {
                    scenario_id: scenario.id,
                    enrollment_id: enrollment.id,
                });
            }
        }
        let answer = IntakeAnswer {
            event_id: event.id,
            enrollments,
        };
        Ok(p.enrollments.save_event_answer(account, &answer).await?)
    }
}
