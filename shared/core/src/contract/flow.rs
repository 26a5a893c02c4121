//! The contract of [`FlowStore`]: one commit per event, one per attempt, rows as the timers'
//! truth. Run by every adapter that implements the inline path.

use serde_json::json;

use super::{attempt, delivery, pass, scenario, ts, unique};
use crate::domain::contact::Contact;
use crate::domain::delivery::DeliveryStatus;
use crate::domain::event::EnrollmentRef;
use crate::domain::scenario::ScenarioStatus;
use crate::ports::*;

fn contact(id: i64, name: &str) -> Contact {
    Contact::parse(
        json!({"id": id, "email": "c@example.org", "firstname": name}),
        "contact",
    )
    .unwrap()
}

fn enrollment(id: &str, scenario: &str, contact: i64) -> Enrollment {
    Enrollment {
        id: id.to_string(),
        account: 4_000,
        scenario_id: scenario.to_string(),
        contact_id: contact,
        seq: 0,
        step_id: Some("check".into()),
        state: EnrollmentState::Active,
        created_at: ts(0),
    }
}

fn counts_of<'a>(counts: &'a [StepCounts], step: &str) -> Option<&'a StepCounts> {
    counts.iter().find(|c| c.step_id == step)
}

/// `flow`, `scenarios`, `contacts` and `deliveries` are views of one store.
pub async fn flow_store(
    flow: &dyn FlowStore,
    scenarios: &dyn ScenarioStore,
    contacts: &dyn ContactStore,
    deliveries: &dyn DeliveryStore,
) {
    let u = unique();
    let (hooked, waiting) = (format!("scn_{u}_hook"), format!("scn_{u}_wait"));
    for id in [&hooked, &waiting] {
        let active = scenario(4_000, id, "group_added", ScenarioStatus::Active, 0);
        scenarios.insert(&active).await.unwrap();
    }
    let archived = format!("scn_{u}_archived");
    scenarios
        .insert(&scenario(
            4_000,
            &archived,
            "group_added",
            ScenarioStatus::Archived,
            0,
        ))
        .await
        .unwrap();
    let contact_id = 7_000 + (jiff::Timestamp::now().as_nanosecond() % 1_000_000) as i64;
    let (enr_a, enr_b) = (format!("enr_{u}_a"), format!("enr_{u}_b"));
    let mut first = delivery(&format!("dlv_{u}_1"), &hooked, contact_id, 0);
    first.handoff.enrollment_id = enr_a.clone();
    let plan = |event_id: &str,
                name: &str,
                a: &str,
                b: &str,
                first: &crate::domain::delivery::Delivery| IntakeCommit {
        account: 4_000,
        event_id: event_id.to_string(),
        contact: contact(contact_id, name),
        store_contact: true,
        occurred_at: ts(0),
        time_scenarios: Vec::new(),
        occurrences: Vec::new(),
        fired: None,
        enrollments: vec![
            PlannedEnrollment {
                enrollment: enrollment(a, &hooked, contact_id),
                allow_reentry: false,
                walk: Walk {
                    passes: vec![pass(&format!("{a}:0:check"), &hooked, "check", contact_id)],
                    end: WalkEnd::Deliver(Box::new(first.clone())),
                },
            },
            PlannedEnrollment {
                enrollment: enrollment(b, &waiting, contact_id),
                allow_reentry: true,
                walk: Walk {
                    passes: vec![pass(&format!("{b}:0:pause"), &waiting, "pause", contact_id)],
                    end: WalkEnd::Wait {
                        step_id: "pause".into(),
                        until: ts(60),
                        resume: Some("after".into()),
                    },
                },
            },
        ],
    };

    // 1. an event: snapshot, both enrollments, their passes, the delivery and the wait, at once
    let done = flow
        .commit_intake(&plan(&format!("e{u}_1"), "Ann", &enr_a, &enr_b, &first))
        .await
        .unwrap();
    assert!(!done.replay);
    let refs = |a: &str, b: &str| {
        vec![
            EnrollmentRef {
                scenario_id: hooked.clone(),
                enrollment_id: a.to_string(),
            },
            EnrollmentRef {
                scenario_id: waiting.clone(),
                enrollment_id: b.to_string(),
            },
        ]
    };
    assert_eq!(done.answer.enrollments, refs(&enr_a, &enr_b));
    assert_eq!(done.deliveries, vec![first.clone()]);
    assert_eq!(
        done.waits,
        vec![DueWork::Wait {
            enrollment_id: enr_b.clone(),
            at: ts(60)
        }]
    );
    let stored = contacts.get(4_000, contact_id).await.unwrap().unwrap();
    assert_eq!(stored.snapshot["firstname"], "Ann");
    assert_eq!(deliveries.get(&first.id).await.unwrap().unwrap(), first);
    let counts = deliveries.step_counts(4_000, &hooked).await.unwrap();
    assert_eq!(counts_of(&counts, "check").map(|c| c.passes), Some(1));
    let hook = counts_of(&counts, "hook").unwrap();
    assert_eq!(
        (
            hook.passes,
            hook.unique_contacts,
            hook.pending,
            hook.accepted
        ),
        (1, 1, 1, 0)
    );

    // 2. the same event id again: the first answer, nothing written (not even the snapshot)
    let again = flow
        .commit_intake(&plan(
            &format!("e{u}_1"),
            "Bob",
            &format!("{enr_a}x"),
            &format!("{enr_b}x"),
            &first,
        ))
        .await
        .unwrap();
    assert!(again.replay && again.deliveries.is_empty() && again.waits.is_empty());
    assert_eq!(again.answer, done.answer);
    assert_eq!(
        contacts
            .get(4_000, contact_id)
            .await
            .unwrap()
            .unwrap()
            .snapshot["firstname"],
        "Ann"
    );

    // 3. a new event: no re-entry into the first scenario, re-entry into the second
    let mut second = delivery(&format!("dlv_{u}_2"), &hooked, contact_id, 0);
    second.handoff.enrollment_id = format!("enr_{u}_c");
    let re = flow
        .commit_intake(&plan(
            &format!("e{u}_2"),
            "Cy",
            &format!("enr_{u}_c"),
            &format!("enr_{u}_d"),
            &second,
        ))
        .await
        .unwrap();
    assert_eq!(
        re.answer.enrollments,
        refs("", &format!("enr_{u}_d"))[1..].to_vec()
    );
    assert!(re.deliveries.is_empty());
    assert!(deliveries.get(&second.id).await.unwrap().is_none());
    assert_eq!(
        contacts
            .get(4_000, contact_id)
            .await
            .unwrap()
            .unwrap()
            .snapshot["firstname"],
        "Cy"
    );

    // 4. due work: the delivery now, the waits at their time, never before
    let mine = |work: &[DueWork]| {
        work.iter()
            .filter(|w| match w {
                DueWork::Delivery { id, .. } => id.contains(&u),
                DueWork::Wait { enrollment_id, .. } => enrollment_id.contains(&u),
                DueWork::Occurrence(o) => o.scenario_id.contains(&u),
            })
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        mine(&flow.due(ts(59), 100).await.unwrap()),
        vec![DueWork::Delivery {
            id: first.id.clone(),
            at: ts(0)
        }]
    );
    let due = mine(&flow.due(ts(60), 100).await.unwrap());
    assert_eq!(due.len(), 3, "{due:?}");
    assert!(due.contains(&DueWork::Wait {
        enrollment_id: enr_b.clone(),
        at: ts(60)
    }));
    let w = flow.waiting(&enr_b).await.unwrap().unwrap();
    assert_eq!(
        (w.enrollment.seq, w.until, w.resume.as_deref()),
        (1, ts(60), Some("after"))
    );
    assert_eq!(w.enrollment.contact_id, contact_id);
    assert!(
        flow.waiting(&enr_a).await.unwrap().is_none(),
        "awaiting a delivery is not waiting"
    );

    // 5. the first attempt fails; the contact moves on in the same commit; only once
    let failed = AttemptCommit {
        delivery: first.clone(),
        attempt: attempt(Some(500)),
        status: DeliveryStatus::Pending,
        next_attempt_at: Some(ts(10)),
        then: Some(Move {
            enrollment_id: enr_a.clone(),
            from_seq: 1,
            walk: Walk {
                passes: vec![pass(
                    &format!("{enr_a}:1:after"),
                    &hooked,
                    "after",
                    contact_id,
                )],
                end: WalkEnd::Complete,
            },
        }),
    };
    assert_eq!(
        flow.commit_attempt(&failed).await.unwrap(),
        AttemptRecorded {
            recorded: true,
            moved: true
        }
    );
    assert_eq!(
        flow.commit_attempt(&failed).await.unwrap(),
        AttemptRecorded {
            recorded: false,
            moved: false
        }
    );
    let read = deliveries.get(&first.id).await.unwrap().unwrap();
    assert_eq!(
        (read.status, read.attempts.len(), read.next_attempt_at),
        (DeliveryStatus::Pending, 1, Some(ts(10)))
    );
    assert!(
        !mine(&flow.due(ts(9), 100).await.unwrap())
            .iter()
            .any(|w| matches!(w, DueWork::Delivery { id, .. } if *id == first.id)),
        "a retry is not due before its time"
    );
    let counts = deliveries.step_counts(4_000, &hooked).await.unwrap();
    assert_eq!(counts_of(&counts, "after").map(|c| c.passes), Some(1));
    assert_eq!(
        counts_of(&counts, "hook").map(|c| (c.passes, c.pending)),
        Some((1, 1))
    );

    // 6. the retry is accepted: the delivery settles, no move
    let accepted = AttemptCommit {
        delivery: read.clone(),
        attempt: attempt(Some(200)),
        status: DeliveryStatus::Accepted,
        next_attempt_at: None,
        then: None,
    };
    assert_eq!(
        flow.commit_attempt(&accepted).await.unwrap(),
        AttemptRecorded {
            recorded: true,
            moved: false
        }
    );
    let read = deliveries.get(&first.id).await.unwrap().unwrap();
    assert_eq!(
        (read.status, read.attempts.len(), read.next_attempt_at),
        (DeliveryStatus::Accepted, 2, None)
    );
    let hook = deliveries.step_counts(4_000, &hooked).await.unwrap();
    let hook = counts_of(&hook, "hook").unwrap();
    assert_eq!(
        (hook.passes, hook.accepted, hook.pending, hook.failed),
        (1, 1, 0, 0)
    );

    // 7. the wait ends: the move is a compare-and-set on the sequence
    let mut third = delivery(&format!("dlv_{u}_3"), &waiting, contact_id, 60);
    third.step_id = "after".into();
    let resume = Move {
        enrollment_id: enr_b.clone(),
        from_seq: 1,
        walk: Walk {
            passes: vec![],
            end: WalkEnd::Deliver(Box::new(third.clone())),
        },
    };
    assert!(flow.commit_move(&resume).await.unwrap());
    assert!(!flow.commit_move(&resume).await.unwrap());
    assert!(flow.waiting(&enr_b).await.unwrap().is_none());
    assert_eq!(deliveries.get(&third.id).await.unwrap().unwrap(), third);
    let due = mine(&flow.due(ts(1_000), 100).await.unwrap());
    assert!(
        !due.iter()
            .any(|w| matches!(w, DueWork::Wait { enrollment_id, .. } if *enrollment_id == enr_b))
    );
    assert!(due.contains(&DueWork::Delivery {
        id: third.id.clone(),
        at: ts(60)
    }));

    // 8. an event planned while its scenario was active, committed after an archive: nobody
    // enters the archived scenario
    let mut late = delivery(&format!("dlv_{u}_late"), &archived, contact_id, 0);
    late.handoff.enrollment_id = format!("enr_{u}_late");
    let done = flow
        .commit_intake(&IntakeCommit {
            account: 4_000,
            event_id: format!("e{u}_late"),
            contact: contact(contact_id, "Dee"),
            store_contact: true,
            occurred_at: ts(0),
            time_scenarios: Vec::new(),
            occurrences: Vec::new(),
            fired: None,
            enrollments: vec![PlannedEnrollment {
                enrollment: enrollment(&format!("enr_{u}_late"), &archived, contact_id),
                allow_reentry: true,
                walk: Walk {
                    passes: vec![],
                    end: WalkEnd::Deliver(Box::new(late.clone())),
                },
            }],
        })
        .await
        .unwrap();
    assert!(done.answer.enrollments.is_empty() && done.deliveries.is_empty());
    assert!(deliveries.get(&late.id).await.unwrap().is_none());
}

/// Time-based triggers on the inline path: the commit that stores a snapshot replaces the
/// contact's pending occurrences; an older snapshot changes neither; an activation starts a
/// backfill and an archive removes the scenario's occurrences and its backfill.
pub async fn flow_store_occurrences(
    flow: &dyn FlowStore,
    scenarios: &dyn ScenarioStore,
    contacts: &dyn ContactStore,
) {
    let u = unique();
    let id = format!("scn_{u}_birthday");
    let draft = scenario(4_000, &id, "date_reached", ScenarioStatus::Draft, 0);
    scenarios.insert(&draft).await.unwrap();
    let mut active = draft.clone();
    active.status = ScenarioStatus::Active;
    assert!(
        scenarios
            .update(&active, ScenarioStatus::Draft)
            .await
            .unwrap()
    );
    let backfills = flow.backfills().await.unwrap();
    assert!(
        backfills.contains(&Backfill {
            account: 4_000,
            scenario_id: id.clone(),
            cursor: None
        }),
        "an activation starts a backfill"
    );
    flow.backfill_done_until(&id, Some("17")).await.unwrap();
    let mine = |b: &Vec<Backfill>| b.iter().find(|b| b.scenario_id == id).cloned();
    assert_eq!(
        mine(&flow.backfills().await.unwrap()).and_then(|b| b.cursor),
        Some("17".to_string())
    );

    let contact_id = 9_000 + (jiff::Timestamp::now().as_nanosecond() % 1_000_000) as i64;
    let at = |secs: i64, day: i8| Scheduled {
        account: 4_000,
        scenario_id: id.clone(),
        contact_id,
        date: jiff::civil::date(2027, 3, day),
        at: ts(secs),
    };
    let commit = |event: &str, occurred: i64, occurrences: Vec<Scheduled>| IntakeCommit {
        account: 4_000,
        event_id: format!("e{u}_{event}"),
        contact: contact(contact_id, event),
        store_contact: true,
        occurred_at: ts(occurred),
        enrollments: Vec::new(),
        time_scenarios: vec![id.clone()],
        occurrences,
        fired: None,
    };
    let occurrences_due = |due: Vec<DueWork>| -> Vec<Scheduled> {
        due.into_iter()
            .filter_map(|w| match w {
                DueWork::Occurrence(o) if o.scenario_id == id => Some(*o),
                _ => None,
            })
            .collect()
    };
    let done = flow
        .commit_intake(&commit("first", 100, vec![at(10, 1)]))
        .await
        .unwrap();
    assert_eq!(done.occurrences, vec![at(10, 1)]);
    let due = flow.due(ts(1_000), 1_000).await.unwrap();
    assert_eq!(occurrences_due(due), vec![at(10, 1)]);
    // a newer snapshot moves the date: the old occurrence goes, in the same commit
    flow.commit_intake(&commit("moved", 200, vec![at(20, 2)]))
        .await
        .unwrap();
    let due = flow.due(ts(1_000), 1_000).await.unwrap();
    assert_eq!(occurrences_due(due), vec![at(20, 2)]);
    // an older snapshot arriving late: neither the snapshot nor its occurrences are stored
    let done = flow
        .commit_intake(&commit("late", 150, vec![at(30, 3)]))
        .await
        .unwrap();
    assert!(done.occurrences.is_empty());
    let due = flow.due(ts(1_000), 1_000).await.unwrap();
    assert_eq!(occurrences_due(due), vec![at(20, 2)]);
    let stored = contacts.get(4_000, contact_id).await.unwrap().unwrap();
    assert_eq!(stored.snapshot["firstname"], "moved");
    // planned without a time-based scenario that is active at the commit (activated since the
    // plan): refused, nothing written
    let mut stale_plan = commit("stale-plan", 900, vec![]);
    stale_plan.time_scenarios = Vec::new();
    let refused = flow.commit_intake(&stale_plan).await.unwrap_err();
    assert!(refused.is::<StalePlan>(), "{refused:#}");
    let stored = contacts.get(4_000, contact_id).await.unwrap().unwrap();
    assert_eq!(
        stored.snapshot["firstname"], "moved",
        "a stale plan was stored"
    );
    // a firing reads the contact without storing it, and replaces its occurrence by the next
    // one in the same commit
    let next_year = Scheduled {
        date: jiff::civil::date(2028, 3, 2),
        at: ts(500),
        ..at(20, 2)
    };
    let mut fire = commit("fire", 999, vec![next_year.clone()]);
    fire.store_contact = false;
    fire.time_scenarios = Vec::new();
    fire.fired = Some(at(20, 2));
    fire.contact = contact(contact_id, "not stored");
    let done = flow.commit_intake(&fire).await.unwrap();
    assert!(!done.replay);
    let stored = contacts.get(4_000, contact_id).await.unwrap().unwrap();
    assert_eq!(stored.snapshot["firstname"], "moved");
    let due = flow.due(ts(1_000), 1_000).await.unwrap();
    assert_eq!(occurrences_due(due), vec![next_year.clone()]);
    // repeated after a crash: a replay that only retires the row again (here re-added by a
    // snapshot since), and schedules nothing more
    flow.commit_intake(&commit("again", 300, vec![at(20, 2)]))
        .await
        .unwrap();
    let replay = flow.commit_intake(&fire).await.unwrap();
    assert!(replay.replay);
    let due = flow.due(ts(1_000), 1_000).await.unwrap();
    assert!(
        occurrences_due(due).is_empty(),
        "a repeated firing left its row"
    );
    // a firing whose row a newer snapshot moved away since it was read: nothing fires
    flow.commit_intake(&commit("fourth", 400, vec![at(40, 4)]))
        .await
        .unwrap();
    let mut stale = commit("stale-fire", 999, vec![next_year.clone()]);
    stale.event_id = format!("e{u}_stale_fire");
    stale.store_contact = false;
    stale.time_scenarios = Vec::new();
    stale.fired = Some(at(30, 3));
    stale.enrollments = vec![PlannedEnrollment {
        enrollment: enrollment(&format!("enr_{u}_stale"), &id, contact_id),
        allow_reentry: true,
        walk: Walk {
            passes: vec![],
            end: WalkEnd::Complete,
        },
    }];
    let mut fresh = stale.clone();
    let done = flow.commit_intake(&stale).await.unwrap();
    assert!(!done.replay && done.answer.enrollments.is_empty());
    let due = flow.due(ts(1_000), 1_000).await.unwrap();
    assert_eq!(
        occurrences_due(due),
        vec![at(40, 4)],
        "a stale firing stored its next occurrence"
    );
    // the same firing while its row is there enrolls the contact (what the check above skipped)
    fresh.event_id = format!("e{u}_fresh_fire");
    fresh.fired = Some(at(40, 4));
    let done = flow.commit_intake(&fresh).await.unwrap();
    assert_eq!(done.answer.enrollments.len(), 1, "{:?}", done.answer);

    // archiving cancels its future occurrences and its backfill
    let mut archived = active.clone();
    archived.status = ScenarioStatus::Archived;
    assert!(
        scenarios
            .update(&archived, ScenarioStatus::Active)
            .await
            .unwrap()
    );
    let due = flow.due(ts(1_000), 1_000).await.unwrap();
    assert!(occurrences_due(due).is_empty());
    assert_eq!(mine(&flow.backfills().await.unwrap()), None);
}
