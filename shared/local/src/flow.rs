//! The inline path's store ([`FlowStore`]) on SQLite: each method is one atomic operation of
//! the group-committing database thread, so an event's writes, or an attempt's with the
//! contact's move, land together or not at all.

use async_trait::async_trait;
use hookline_core::domain::delivery::{Delivery, DeliveryStatus};
use hookline_core::domain::time::{from_millis, to_millis};
use hookline_core::ports::{
    AttemptCommit, AttemptRecorded, Backfill, DueWork, Enrollment, EnrollmentState, FlowStore,
    IntakeCommit, IntakeDone, Move, StoreResult, Waiting, Walk, WalkEnd,
};
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};

mod intake;

use crate::SqliteStore;
use crate::db::{exec, row};
use crate::store::{insert_delivery, insert_pass, now_ms, read_occurrence, update_delivery};

/// A walk with its JSON columns serialized before it goes to the database thread.
struct Prepared {
    walk: Walk,
    delivery_json: Option<(String, String, String)>,
}

impl Prepared {
    fn new(walk: Walk) -> anyhow::Result<Prepared> {
        let delivery_json = match &walk.end {
            WalkEnd::Deliver(d) => Some((
                serde_json::to_string(&d.handoff)?,
                serde_json::to_string(&d.headers)?,
                serde_json::to_string(&d.attempts)?,
            )),
            _ => None,
        };
        Ok(Prepared {
            walk,
            delivery_json,
        })
    }

    /// The enrollment's columns after this walk: (step, state, due, resume).
    fn columns(&self) -> (Option<&str>, EnrollmentState, Option<i64>, Option<&str>) {
        match &self.walk.end {
            WalkEnd::Deliver(d) => (
                Some(d.step_id.as_str()),
                EnrollmentState::AwaitingDelivery,
                None,
                None,
            ),
            WalkEnd::Wait {
                step_id,
                until,
                resume,
            } => (
                Some(step_id.as_str()),
                EnrollmentState::Waiting,
                Some(to_millis(*until)),
                resume.as_deref(),
            ),
            WalkEnd::Complete => (None, EnrollmentState::Completed, None, None),
            WalkEnd::Stop => (None, EnrollmentState::Stopped, None, None),
        }
    }

    /// Records the passes and the delivery of the walk.
    fn record(&self, c: &Connection) -> rusqlite::Result<()> {
        for pass in &self.walk.passes {
            insert_pass(c, pass)?;
        }
        if let (WalkEnd::Deliver(d), Some((handoff, headers, attempts))) =
            (&self.walk.end, &self.delivery_json)
        {
            insert_delivery(c, d, handoff, headers, attempts)?;
        }
        Ok(())
    }

    /// What the workers get once this walk is stored.
    fn started(
        &self,
        enrollment_id: &str,
        deliveries: &mut Vec<Delivery>,
        waits: &mut Vec<DueWork>,
    ) {
        match &self.walk.end {
            WalkEnd::Deliver(d) => deliveries.push((**d).clone()),
            WalkEnd::Wait { until, .. } => waits.push(DueWork::Wait {
                enrollment_id: enrollment_id.to_string(),
                at: *until,
            }),
            WalkEnd::Complete | WalkEnd::Stop => {}
        }
    }
}

/// Moves an enrollment from `from_seq` with a compare-and-set, and records the walk.
fn apply_move(
    c: &Connection,
    enrollment_id: &str,
    from_seq: u64,
    w: &Prepared,
) -> rusqlite::Result<bool> {
    let (step, state, due, resume) = w.columns();
    let moved = exec(c,
        "UPDATE enrollments SET seq = ?1, step_id = ?2, state = ?3, due_at = ?4, resume_step = ?5, updated_at = ?6
         WHERE id = ?7 AND seq = ?8",
        params![from_seq as i64 + 1, step, state.as_str(), due, resume, now_ms(), enrollment_id, from_seq as i64],
    )? == 1;
    if moved {
        w.record(c)?;
    }
    Ok(moved)
}

#[async_trait]
impl FlowStore for SqliteStore {
    async fn commit_intake(&self, intake: &IntakeCommit) -> StoreResult<IntakeDone> {
        let planned = intake
            .enrollments
            .iter()
            .map(|p| {
                Ok((
                    p.enrollment.clone(),
                    p.allow_reentry,
                    Prepared::new(p.walk.clone())?,
                ))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let rows = intake::IntakeRows {
            account: intake.account,
            event_id: intake.event_id.clone(),
            contact_id: intake.contact.id,
            snapshot: serde_json::to_string(&intake.contact.snapshot)?,
            store_contact: intake.store_contact,
            occurred_at: to_millis(intake.occurred_at),
            planned,
            time_scenarios: intake.time_scenarios.clone(),
            occurrences: intake.occurrences.clone(),
            fired: intake.fired.clone(),
        };
        self.db().call(move |c| intake::commit(c, rows)).await
    }

    async fn commit_attempt(&self, a: &AttemptCommit) -> StoreResult<AttemptRecorded> {
        let attempts_json = serde_json::to_string(&a.delivery.kept_with(&a.attempt))?;
        let (id, before, count) = (
            a.delivery.id.clone(),
            a.delivery.attempt_count,
            a.delivery.attempt_count + 1,
        );
        let (status, next) = (a.status, a.next_attempt_at);
        let then = match &a.then {
            Some(m) => Some((
                m.enrollment_id.clone(),
                m.from_seq,
                Prepared::new(m.walk.clone())?,
            )),
            None => None,
        };
        self.db()
            .call(move |c| {
                let recorded = update_delivery(
                    c,
                    &id,
                    DeliveryStatus::Pending,
                    before,
                    &attempts_json,
                    count,
                    status,
                    next,
                )?;
                if !recorded {
                    return Ok(AttemptRecorded {
                        recorded: false,
                        moved: false,
                    });
                }
                let moved = match &then {
                    Some((enrollment_id, from_seq, walk)) => {
                        apply_move(c, enrollment_id, *from_seq, walk)?
                    }
                    None => false,
                };
                Ok(AttemptRecorded { recorded, moved })
            })
            .await
    }

    async fn commit_move(&self, m: &Move) -> StoreResult<bool> {
        let walk = Prepared::new(m.walk.clone())?;
        let (id, from_seq) = (m.enrollment_id.clone(), m.from_seq);
        self.db()
            .call(move |c| Ok(apply_move(c, &id, from_seq, &walk)?))
            .await
    }

    async fn waiting(&self, enrollment_id: &str) -> StoreResult<Option<Waiting>> {
        let id = enrollment_id.to_string();
        self.db()
            .read(move |c| {
                Ok(row(c,
                    "SELECT id, account, scenario_id, contact_id, seq, step_id, created_at, due_at, resume_step
                     FROM enrollments WHERE id = ?1 AND state = 'waiting'",
                    params![id],
                    |r| {
                        Ok(Waiting {
                            enrollment: Enrollment {
                                id: r.get(0)?,
                                account: r.get(1)?,
                                scenario_id: r.get(2)?,
                                contact_id: r.get(3)?,
                                seq: r.get::<_, i64>(4)? as u64,
                                step_id: r.get(5)?,
                                state: EnrollmentState::Waiting,
                                created_at: from_millis(r.get(6)?),
                            },
                            until: from_millis(r.get::<_, Option<i64>>(7)?.unwrap_or(0)),
                            resume: r.get(8)?,
                        })
                    },
                )
                .optional()?)
            })
            .await
    }

    async fn due(&self, until: Timestamp, limit: usize) -> StoreResult<Vec<DueWork>> {
        let (until, limit) = (to_millis(until), limit as i64);
        self.db()
            .read(move |c| {
                let mut work = Vec::new();
                let mut stmt = c.prepare_cached(
                    "SELECT id, next_attempt_at FROM deliveries WHERE status = 'pending' AND next_attempt_at <= ?1
                     ORDER BY next_attempt_at LIMIT ?2",
                )?;
                for r in stmt.query_map(params![until, limit], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
                    let (id, at) = r?;
                    work.push(DueWork::Delivery { id, at: from_millis(at) });
                }
                let mut stmt = c.prepare_cached(
                    "SELECT id, due_at FROM enrollments WHERE state = 'waiting' AND due_at <= ?1
                     ORDER BY due_at LIMIT ?2",
                )?;
                for r in stmt.query_map(params![until, limit], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
                    let (enrollment_id, at) = r?;
                    work.push(DueWork::Wait { enrollment_id, at: from_millis(at) });
                }
                let mut stmt = c.prepare_cached(
                    "SELECT scenario_id, contact_id, date, account, at FROM occurrences WHERE at <= ?1
                     ORDER BY at LIMIT ?2",
                )?;
                for o in stmt.query_map(params![until, limit], |r| Ok(read_occurrence(r)))? {
                    match o? {
                        Ok(o) => work.push(DueWork::Occurrence(Box::new(o))),
                        // one bad row must not hold up the rest (deliveries, waits)
                        Err(e) => tracing::warn!(error = %e, "an unreadable occurrence row: skipped"),
                    }
                }
                work.sort_by_key(DueWork::at);
                Ok(work)
            })
            .await
    }

    async fn backfills(&self) -> StoreResult<Vec<Backfill>> {
        self.db()
            .read(|c| {
                let mut stmt =
                    c.prepare_cached("SELECT account, scenario_id, cursor FROM backfills")?;
                let rows = stmt
                    .query_map([], |r| {
                        Ok(Backfill {
                            account: r.get(0)?,
                            scenario_id: r.get(1)?,
                            cursor: r.get(2)?,
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(rows)
            })
            .await
    }

    async fn backfill_done_until(
        &self,
        scenario_id: &str,
        cursor: Option<&str>,
    ) -> StoreResult<()> {
        let (id, cursor) = (scenario_id.to_string(), cursor.map(str::to_string));
        self.db()
            .call(move |c| {
                match cursor {
                    Some(cursor) => exec(
                        c,
                        "UPDATE backfills SET cursor = ?1 WHERE scenario_id = ?2",
                        params![cursor, id],
                    )?,
                    None => exec(
                        c,
                        "DELETE FROM backfills WHERE scenario_id = ?1",
                        params![id],
                    )?,
                };
                Ok(())
            })
            .await
    }
}
