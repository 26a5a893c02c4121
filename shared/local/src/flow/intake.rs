//! The intake commit on SQLite: what one event (or one occurrence's firing) writes, in one
//! transaction. The order is the invariant:
//! 1. the event id's stored answer is read first: it says whether this is a replay;
//! 2. a firing retires its occurrence row ([`retire_fired`]): a firing whose row a snapshot
//!    moved meanwhile fires nothing, and a replay that found its row puts the next one back;
//! 3. a replay writes nothing more: it answers as the first time did;
//! 4. the part events and firings share ([`apply`]): the time-based plan is checked, the
//!    snapshot stored with the contact's occurrences, the enrollments created, the answer kept.

use anyhow::Context;
use hookline_core::domain::delivery::Delivery;
use hookline_core::domain::event::{EnrollmentRef, IntakeAnswer};
use hookline_core::ports::{DueWork, Enrollment, IntakeDone, Scheduled, StalePlan};
use rusqlite::{Connection, OptionalExtension, params};

use super::Prepared;
use crate::db::{exec, row};
use crate::store::{entry_key, insert_occurrence, now_ms, put_snapshot};

/// An intake commit's data, owned by the database thread's job.
pub(super) struct IntakeRows {
    pub account: i64,
    pub event_id: String,
    pub contact_id: i64,
    /// The snapshot (JSON), stored when `store_contact` (an event; a firing only reads it).
    pub snapshot: String,
    pub store_contact: bool,
    /// Milliseconds; an older snapshot than the stored one is not stored.
    pub occurred_at: i64,
    /// The enrollments planned, with their re-entry rule and walk.
    pub planned: Vec<(Enrollment, bool, Prepared)>,
    /// The active time-based scenarios the plan was made with.
    pub time_scenarios: Vec<String>,
    /// The contact's new pending occurrences (a firing's: its next one).
    pub occurrences: Vec<Scheduled>,
    /// The occurrence this commit fires.
    pub fired: Option<Scheduled>,
}

/// The transaction of [`hookline_core::ports::FlowStore::commit_intake`].
pub(super) fn commit(c: &Connection, rows: IntakeRows) -> anyhow::Result<IntakeDone> {
    let stored: Option<String> = row(
        c,
        "SELECT answer FROM events WHERE account = ?1 AND event_id = ?2",
        params![rows.account, rows.event_id],
        |r| r.get(0),
    )
    .optional()?;
    if let Some(f) = &rows.fired
        && !retire_fired(c, f, stored.is_some(), &rows.occurrences)?
    {
        let answer = IntakeAnswer {
            event_id: rows.event_id,
            enrollments: Vec::new(),
        };
        return Ok(done(answer, false));
    }
    if let Some(stored) = stored {
        let answer = serde_json::from_str(&stored).context("a stored event answer")?;
        return Ok(done(answer, true));
    }
    apply(c, rows)
}

/// Retires the row of the occurrence `f` a firing is for; answers whether it fires.
///
/// Gone already, with the event id not yet claimed (`!claimed`): a snapshot moved the date (or
/// an archive cancelled it) since the firing read the contact — nothing fires. A replay (the
/// id claimed) that found its row puts the next occurrence back: a snapshot stored the same day
/// planned this occurrence again (a rolling 24 hours finds it) and replaced the next one by it.
/// A replay that found no row (a firing repeated after a crash, a scan's stale copy) changes
/// nothing.
fn retire_fired(
    c: &Connection,
    f: &Scheduled,
    claimed: bool,
    next: &[Scheduled],
) -> rusqlite::Result<bool> {
    let retired = exec(
        c,
        "DELETE FROM occurrences WHERE scenario_id = ?1 AND contact_id = ?2 AND date = ?3",
        params![f.scenario_id, f.contact_id, f.date.to_string()],
    )? == 1;
    if !claimed && !retired {
        return Ok(false);
    }
    if retired {
        for o in next {
            insert_occurrence(c, o)?; // the next one, with this firing (or again)
        }
    }
    Ok(true)
}

/// What an event and a firing both write once the event id is new.
fn apply(c: &Connection, rows: IntakeRows) -> anyhow::Result<IntakeDone> {
    if rows.store_contact {
        check_time_plan(c, rows.account, &rows.time_scenarios)?;
    }
    let now = now_ms();
    // A snapshot older than the stored one is not stored (SPEC §3); nor are the occurrences it
    // implies. One that is stored replaces the contact's pending occurrences of every
    // time-based scenario, in this same transaction.
    let applied = rows.store_contact
        && put_snapshot(
            c,
            rows.account,
            rows.contact_id,
            &rows.snapshot,
            rows.occurred_at,
        )?;
    let mut scheduled = Vec::new();
    if applied {
        for scenario_id in &rows.time_scenarios {
            exec(
                c,
                "DELETE FROM occurrences WHERE scenario_id = ?1 AND contact_id = ?2",
                params![scenario_id, rows.contact_id],
            )?;
        }
        for o in &rows.occurrences {
            insert_occurrence(c, o)?;
        }
        scheduled = rows.occurrences;
    }
    let (enrollments, deliveries, waits) = enroll(c, &rows.planned, now)?;
    let answer = IntakeAnswer {
        event_id: rows.event_id,
        enrollments,
    };
    exec(
        c,
        "INSERT INTO events (account, event_id, answer, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![
            rows.account,
            answer.event_id,
            serde_json::to_string(&answer)?,
            now
        ],
    )?;
    Ok(IntakeDone {
        answer,
        replay: false,
        deliveries,
        waits,
        occurrences: scheduled,
    })
}

/// The occurrences were planned for the account's active time-based scenarios as they were
/// read: one activated or archived since makes the plan stale (the event is planned again).
fn check_time_plan(c: &Connection, account: i64, planned: &[String]) -> anyhow::Result<()> {
    let mut stmt = c.prepare_cached(
        "SELECT id FROM scenarios WHERE account = ?1 AND status = 'active'
         AND trigger_type IN ('date_reached', 'consent_expiring')",
    )?;
    let mut active = stmt
        .query_map(params![account], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    active.sort_unstable();
    let mut planned = planned.to_vec();
    planned.sort_unstable();
    if active != planned {
        return Err(StalePlan.into());
    }
    Ok(())
}

/// Creates the planned enrollments (stored as walked once: seq 1) with their walks; answers
/// the enrollments made and what the workers get.
#[allow(clippy::type_complexity)]
fn enroll(
    c: &Connection,
    planned: &[(Enrollment, bool, Prepared)],
    now: i64,
) -> rusqlite::Result<(Vec<EnrollmentRef>, Vec<Delivery>, Vec<DueWork>)> {
    let (mut enrollments, mut deliveries, mut waits) = (Vec::new(), Vec::new(), Vec::new());
    for (e, allow_reentry, walk) in planned {
        let entry = (!allow_reentry).then(|| entry_key(&e.scenario_id, e.contact_id));
        let (step, state, due, resume) = walk.columns();
        // only into a scenario still active now (an archive may have committed since the walk
        // was planned)
        let created = exec(c,
            "INSERT INTO enrollments (id, account, scenario_id, contact_id, seq, step_id, state, created_at, updated_at, entry_key, due_at, resume_step)
             SELECT ?1, ?2, ?3, ?4, 1, ?5, ?6, ?7, ?8, ?9, ?10, ?11
             WHERE EXISTS (SELECT 1 FROM scenarios WHERE id = ?3 AND account = ?2 AND status = 'active')
             ON CONFLICT DO NOTHING",
            params![e.id, e.account, e.scenario_id, e.contact_id, step, state.as_str(), hookline_core::domain::time::to_millis(e.created_at), now, entry, due, resume],
        )? == 1;
        if !created {
            continue; // entered before (no re-entry), or no longer active
        }
        walk.record(c)?;
        walk.started(&e.id, &mut deliveries, &mut waits);
        enrollments.push(EnrollmentRef {
            scenario_id: e.scenario_id.clone(),
            enrollment_id: e.id.clone(),
        });
    }
    Ok((enrollments, deliveries, waits))
}

/// An answer with nothing created now.
fn done(answer: IntakeAnswer, replay: bool) -> IntakeDone {
    IntakeDone {
        answer,
        replay,
        deliveries: Vec::new(),
        waits: Vec::new(),
        occurrences: Vec::new(),
    }
}
