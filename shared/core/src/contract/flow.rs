//! The contract of [`FlowStore`]: one commit per event, one per attempt, rows as the timers'
//! truth. Run by every adapter that implements the inline path.

use serde_json::json;

use super::{attempt, delivery, delivery_on, pass, scenario, ts, unique};
use crate::domain::contact::Contact;
use crate::domain::delivery::DeliveryStatus;
use crate::domain::event::EnrollmentRef;
use crate::domain::ids::{delivery_step_key, step_key};
use crate::domain::scenario::ScenarioStatus;
use crate::ports::*;

pub(super) fn contact(id: i64, name: &str) -> Contact {
    Contact::parse(
        json!({"id": id, "email": "c@example.org", "firstname": name}),
        "contact",
    )
    .unwrap()
}

pub(super) fn enrollment(id: &str, scenario: &str, contact: i64) -> Enrollment {
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
                DueWork::Delivery { id, .. } => delivery_step_key(id).is_some_and(|k| {
                    [(&hooked, "hook"), (&waiting, "after"), (&archived, "hook")]
                        .iter()
                        .any(|(scn, step)| step_key(scn, step) == k)
                }),
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
    let third = delivery_on(&format!("dlv_{u}_3"), &waiting, "after", contact_id, 60);
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
