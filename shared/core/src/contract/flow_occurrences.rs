//! The contract of [`FlowStore`] for time-based triggers: the commit that stores a snapshot
//! replaces the contact's occurrences, a firing is one commit, activation and archive.

use super::flow::{contact, enrollment};
use super::{scenario, ts, unique};
use crate::domain::scenario::ScenarioStatus;
use crate::ports::*;

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
            .update(&active, Version::of(&draft))
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
    // a snapshot the same day plans the occurrence just fired again (a rolling 24 hours finds
    // it): its commit replaces next year's row by it; firing that row is a replay, which
    // retires it and puts the next one back (a yearly trigger keeps repeating)
    flow.commit_intake(&commit("again", 300, vec![at(20, 2)]))
        .await
        .unwrap();
    let replay = flow.commit_intake(&fire).await.unwrap();
    assert!(replay.replay);
    assert!(replay.answer.enrollments.is_empty() && replay.deliveries.is_empty());
    let due = flow.due(ts(1_000), 1_000).await.unwrap();
    assert_eq!(
        occurrences_due(due),
        vec![next_year.clone()],
        "a repeated firing left its row, or lost the next occurrence"
    );
    // a firing whose row a newer snapshot moved away since it was read: nothing fires
    flow.commit_intake(&commit("fourth", 400, vec![at(40, 4)]))
        .await
        .unwrap();
    // (a stale copy of the firing already made, its row gone: a replay that puts nothing back)
    let replay = flow.commit_intake(&fire).await.unwrap();
    assert!(replay.replay);
    let due = flow.due(ts(1_000), 1_000).await.unwrap();
    assert_eq!(
        occurrences_due(due),
        vec![at(40, 4)],
        "a stale replay scheduled"
    );
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
            .update(&archived, Version::of(&active))
            .await
            .unwrap()
    );
    let due = flow.due(ts(1_000), 1_000).await.unwrap();
    assert!(occurrences_due(due).is_empty());
    assert_eq!(mine(&flow.backfills().await.unwrap()), None);
}
