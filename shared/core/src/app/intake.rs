//! `POST /v1/events`: refresh the snapshot and enroll the contact in every matching scenario.

use std::sync::Arc;

use serde_json::Value;

use super::outbox::Outbox;

use super::advance::place_after;
use super::walk::Walker;
use super::{AppError, Hookline};
use crate::domain::Invalid;
use crate::domain::contact::Contact;
use crate::domain::event::{EnrollmentRef, Event, EventIn, EventMemo, IntakeAnswer};
use crate::domain::ids::{derived_id, entry_enrollment_id};
use crate::domain::payload::json_size;
use crate::domain::scenario::ScenarioRecord;
use crate::domain::time::add;
use crate::ports::{EnrollOutcome, Enrollment, Pipeline, Queue, SnapshotPut, WalkEnd};

impl Hookline {
    /// Idempotent by event `id`: the same id again enrolls nobody twice and gets the first answer.
    /// Every write is keyed (enrollment ids derive from the event and scenario), so a retry after
    /// a crash between any two writes finishes the work instead of repeating it.
    pub async fn intake(&self, account: i64, body: Value) -> Result<IntakeAnswer, AppError> {
        let event = crate::domain::from_json_value::<EventIn>(body, "")?.validate()?;
        let answer = match &self.ports.pipeline {
            Pipeline::Inline { flow, dispatch } => {
                self.intake_inline(flow.as_ref(), dispatch.as_ref(), account, event)
                    .await
            }
            Pipeline::Queued(_) => {
                self.reading_active_once(account)
                    .intake_queued(account, event)
                    .await
            }
        }?;
        crate::metrics::event_taken(1);
        Ok(answer)
    }

    /// The queued path: each write on its own, keyed so that a retry finishes the work.
    ///
    /// The event is remembered with the snapshot it brings, in the same write: its id and the
    /// scenarios it matched (read first). The same id again finds that memo and answers as the
    /// first time: each of those scenarios' enrollment for this event (the ids derive from
    /// both; a repeat after a crash makes what was missing). No item per event — except for an
    /// event whose snapshot is older than the stored one (not stored, nor its memo): its
    /// answer is stored on its own, as the inline path does for every event. A repeat whose
    /// memo is gone (the contact's later events took its slot) is answered from the scenarios
    /// that match it now.
    async fn intake_queued(&self, account: i64, event: Event) -> Result<IntakeAnswer, AppError> {
        let p = &self.ports;
        let now = p.clock.now();
        let occurred_at = event.occurred_at.unwrap_or(now);
        let matching: Vec<ScenarioRecord> = if event.kind == "contact_updated" {
            Vec::new()
        } else {
            // read once for the whole intake (with the time-based ones `reschedule` reads)
            let active = self.active_scenarios(account, &[&event.kind]).await?;
            active
                .iter()
                .filter(|s| s.record.def.trigger.matches(&event.kind, &event.context))
                .map(|s| s.record.clone())
                .collect()
        };
        let memo = EventMemo {
            event_id: event.id.clone(),
            scenarios: matching.iter().map(|s| s.id.clone()).collect(),
        };
        let remembered = match p
            .contacts
            .put(account, &event.contact, occurred_at, &memo)
            .await?
        {
            SnapshotPut::Applied { previous } => {
                self.reschedule(account, previous.as_ref(), &event.contact, now)
                    .await?;
                true
            }
            SnapshotPut::Seen {
                memo: first,
                stored,
            } => {
                // the same id again: nothing was written; the occurrences of the stored
                // snapshot are placed again (keyed: only what a crash left unplaced is added)
                if let Some(stored) = stored {
                    self.reschedule(account, Some(&stored), &stored, now)
                        .await?;
                }
                return Ok(self
                    .answer_again(account, &event, &first, &matching, now)
                    .await?);
            }
            SnapshotPut::Older => false,
        };
        if !remembered && let Some(answer) = p.enrollments.event_answer(account, &event.id).await? {
            return Ok(answer);
        }
        let mut enrollments = Vec::new();
        for scenario in matching {
            if let Some(enrollment) = self
                .enroll_queued(&event.id, scenario, &event.contact, now)
                .await?
            {
                enrollments.push(enrollment);
            }
        }
        let answer = IntakeAnswer {
            event_id: event.id,
            enrollments,
        };
        if remembered {
            return Ok(answer);
        }
        // the answer says the work is done: what it queued is sent first
        self.queue()?.flush().await?;
        Ok(p.enrollments.save_event_answer(account, &answer).await?)
    }

    /// The answer to an event seen before, from its memo: for each scenario it matched then, in
    /// that order, its enrollment for this event — made now if a crash left it unmade and the
    /// scenario is still active, otherwise as stored (none is made in a scenario no longer
    /// active).
    async fn answer_again(
        &self,
        account: i64,
        event: &Event,
        first: &EventMemo,
        matching: &[ScenarioRecord],
        now: jiff::Timestamp,
    ) -> anyhow::Result<IntakeAnswer> {
        let p = &self.ports;
        let mut enrollments = Vec::new();
        for id in &first.scenarios {
            if let Some(scenario) = matching.iter().find(|s| &s.id == id) {
                let made = self
                    .enroll_queued(&event.id, scenario.clone(), &event.contact, now)
                    .await?;
                enrollments.extend(made);
                continue;
            }
            let Some(scenario) = p.scenarios.get(account, id).await? else {
                continue;
            };
            let enrollment_id = enrollment_id_for(&scenario, event.contact.id, &event.id);
            if let Some(stored) = p.enrollments.get(&enrollment_id).await?
                && stored.id == enrollment_id
            {
                enrollments.push(EnrollmentRef {
                    scenario_id: scenario.id,
                    enrollment_id,
                });
            }
        }
        Ok(IntakeAnswer {
            event_id: event.id.clone(),
            enrollments,
        })
    }

    /// Enrolls `contact` in `scenario` for the event (or occurrence) `event_id` and walks its
    /// first steps; `None` when the contact entered before and re-entry is not allowed.
    /// The walk is planned first, in memory; the enrollment is stored where it comes to rest
    /// (no move right after its creation), then the walk's records are made. Idempotent: the
    /// enrollment id derives from the event and the scenario, and a retry after a crash — the
    /// enrollment found stored, not moved on — plans the walk again at the first try's time
    /// and makes its records again, each keyed, so only what was missing is added. A first
    /// delivery queued twice carries the same request; a copy that comes after the delivery
    /// is stored is dropped, two copies at once may both send it (same bytes, same `id`).
    pub(crate) async fn enroll_queued(
        &self,
        event_id: &str,
        scenario: ScenarioRecord,
        contact: &Contact,
        now: jiff::Timestamp,
    ) -> anyhow::Result<Option<EnrollmentRef>> {
        let p = &self.ports;
        let account = scenario.account;
        let id = enrollment_id_for(&scenario, contact.id, event_id);
        let compiled = match scenario.def.compile(true) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(scenario_id = %scenario.id, error = %e, "an active scenario no longer compiles: nobody enrolled");
                return Ok(None);
            }
        };
        let who = Walker {
            enrollment_id: &id,
            account,
            contact,
            seq: 0,
            fresh_ids: false,
        };
        let walk = self.walk(
            &who,
            &scenario,
            &compiled,
            scenario.def.start.as_deref(),
            now,
        )?;
        let (step_id, state) = place_after(&walk);
        let enrollment = Enrollment {
            id: id.clone(),
            account,
            scenario_id: scenario.id.clone(),
            contact_id: contact.id,
            seq: 1,
            step_id,
            state,
            created_at: now,
        };
        match p
            .enrollments
            .create(&enrollment, scenario.def.allow_reentry)
            .await?
        {
            EnrollOutcome::AlreadyEntered => return Ok(None),
            EnrollOutcome::Created => {
                self.record_walk(&enrollment, &scenario, 0, walk, now)
                    .await?;
            }
            EnrollOutcome::AlreadyExists => {
                // a repeat of an intake that stopped half-way: the walk's records again,
                // planned at the first try's time (the same delivery, the same bytes) — not
                // once the enrollment has moved on (they were all made), nor for an event id
                // sent again after REPEAT_WINDOW (its delivery may be gone by then: it would
                // be sent and counted twice)
                let stored = p.enrollments.get(&enrollment.id).await?;
                if let Some(first) = stored
                    && first.seq <= 1
                    && now < add(first.created_at, REPEAT_WINDOW)
                {
                    let at = first.created_at;
                    let start = scenario.def.start.as_deref();
                    let walk = self.walk(&who, &scenario, &compiled, start, at)?;
                    // a walk that ends in a delivery made its records before that delivery's
                    // first attempt was queued: once it is recorded, nothing is missing (a
                    // platform's retry of an answered event queues nothing again)
                    let delivered = match &walk.end {
                        WalkEnd::Deliver(d) => p.deliveries.is_recorded(&d.id).await?,
                        _ => false,
                    };
                    if !delivered {
                        self.record_walk(&enrollment, &scenario, 0, walk, at)
                            .await?;
                    }
                }
            }
        }
        Ok(Some(EnrollmentRef {
            scenario_id: scenario.id,
            enrollment_id: enrollment.id,
        }))
    }
}

/// The id of the enrollment an event (or occurrence) makes in a scenario: derived from both;
/// without re-entry it names the contact's entry (a store keys it by that).
fn enrollment_id_for(scenario: &ScenarioRecord, contact_id: i64, event_id: &str) -> String {
    let account = scenario.account;
    if scenario.def.allow_reentry {
        derived_id("enr", &[&account.to_string(), event_id, &scenario.id])
    } else {
        entry_enrollment_id(account, &scenario.id, contact_id, event_id)
    }
}

/// How long after an enrollment a repeat of its event still remakes its records: a platform
/// re-sends an unanswered event within this (an event answer kept apart lives as long on AWS).
const REPEAT_WINDOW: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// A contact's events of a batch, with their positions.
type Lane = (Option<i64>, Vec<(usize, Value)>);

/// Most events in one `POST /v1/events/batch`.
pub const MAX_BATCH_EVENTS: usize = 100;
/// The largest event of a batch, as its compact JSON text: what one event sent alone may take
/// (SPEC §3, §8: 256 KiB). A larger one gets its own error item (`event_too_large`).
pub const MAX_BATCH_EVENT: usize = 256 * 1024;

/// One item of a batch answer, in the order of the events.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchItem {
    /// The event's intake answer, as if sent alone.
    Answer(IntakeAnswer),
    /// This event was refused (the others still went through); `field` is a path inside it.
    Invalid {
        /// The event's `id`, when it had one.
        event_id: Option<String>,
        /// What is wrong with it.
        error: Invalid,
    },
}

impl Hookline {
    /// `POST /v1/events/batch`: each event exactly as if sent alone, all at once (they share
    /// commits). A store failure fails the whole batch (503): sending it again is safe, every
    /// event being idempotent by its id.
    pub async fn intake_batch(
        &self,
        account: i64,
        body: Value,
    ) -> Result<Vec<BatchItem>, AppError> {
        let Value::Object(mut body) = body else {
            return Err(
                Invalid::new("invalid_body", "events", "expected {\"events\": [...]}").into(),
            );
        };
        if let Some(key) = body.keys().find(|k| *k != "events") {
            return Err(Invalid::new("unknown_field", key.as_str(), "not a key of a batch").into());
        }
        let events = match body.remove("events") {
            Some(Value::Array(events)) => events,
            _ => {
                return Err(
                    Invalid::new("invalid_field", "events", "must be an array of events").into(),
                );
            }
        };
        if events.len() > MAX_BATCH_EVENTS {
            return Err(Invalid::new(
                "invalid_field",
                "events",
                format!("at most {MAX_BATCH_EVENTS} events per batch"),
            )
            .into());
        }
        // Events of one contact run in their order (its last snapshot wins, as if sent one by
        // one); different contacts run at once and share commits.
        let mut lanes: Vec<Lane> = Vec::new();
        for (i, event) in events.into_iter().enumerate() {
            let contact = event
                .get("contact")
                .and_then(|c| c.get("id"))
                .and_then(Value::as_i64);
            match lanes
                .iter_mut()
                .find(|(c, _)| contact.is_some() && *c == contact)
            {
                Some((_, lane)) => lane.push((i, event)),
                None => lanes.push((contact, vec![(i, event)])),
            }
        }
        let total = lanes.iter().map(|(_, l)| l.len()).sum::<usize>();
        // queued path: what the events queue is held and sent together at the end (one
        // SendMessageBatch per ten tasks), before the batch is answered
        let outbox = match &self.ports.pipeline {
            Pipeline::Queued(queue) => Some(Arc::new(Outbox::new(queue.clone()))),
            Pipeline::Inline { .. } => None,
        };
        // queued path: the account's active scenarios are read once for the whole batch
        let engine = match &outbox {
            Some(outbox) => {
                let mut engine = self.reading_active_once(account);
                engine.ports.pipeline = Pipeline::Queued(outbox.clone());
                engine
            }
            None => self.clone(),
        };
        let engine = &engine;
        let runs = lanes.into_iter().map(|(_, lane)| async move {
            let mut out = Vec::with_capacity(lane.len());
            for (i, event) in lane {
                let event_id = event.get("id").and_then(Value::as_str).map(str::to_string);
                let size = json_size(&event);
                if size > MAX_BATCH_EVENT {
                    let error = Invalid {
                        code: "event_too_large",
                        message: format!(
                            "an event is at most {} KiB, like one sent alone (this one: {size} bytes)",
                            MAX_BATCH_EVENT / 1024
                        ),
                        field: None,
                    };
                    out.push((i, Ok(BatchItem::Invalid { event_id, error })));
                    continue;
                }
                let item = match engine.intake(account, event).await {
                    Ok(answer) => Ok(BatchItem::Answer(answer)),
                    Err(AppError::Invalid(error)) => Ok(BatchItem::Invalid { event_id, error }),
                    Err(other) => Err(other),
                };
                out.push((i, item));
            }
            out
        });
        let ran = futures::future::join_all(runs).await;
        // sent whatever happened: what the events that went through queued is not lost when
        // another one fails the batch (an HTTP client may not send it again)
        let flushed = match &outbox {
            Some(outbox) => outbox.flush().await,
            None => Ok(()),
        };
        let mut items: Vec<Option<BatchItem>> = (0..total).map(|_| None).collect();
        for (i, item) in ran.into_iter().flatten() {
            items[i] = Some(item?);
        }
        flushed?;
        Ok(items.into_iter().flatten().collect())
    }
}
