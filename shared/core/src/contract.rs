//! One contract suite per port. Every adapter's tests call these with a fresh store, so the
//! SQLite and the AWS adapters are held to the same assertions.

#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::json;

use crate::domain::contact::Contact;
use crate::domain::event::{EnrollmentRef, EventMemo, IntakeAnswer};
use crate::domain::ids::entry_enrollment_id;
use crate::domain::scenario::{ScenarioDef, ScenarioRecord, ScenarioStatus};
use crate::domain::signing::StepSecret;
use crate::ports::*;

mod deliveries;
mod destinations;
mod flow;
mod flow_occurrences;
mod keys;
mod occurrences;
pub use deliveries::delivery_store;
pub(crate) use deliveries::{attempt, delivery, delivery_on, pass};
pub use destinations::destination_gate;
pub use flow::flow_store;
pub use flow_occurrences::flow_store_occurrences;
pub use keys::key_store;
pub use occurrences::occurrence_store;

fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).unwrap()
}

/// A unique suffix so suites sharing a store (an emulator) never see each other's records.
fn unique() -> String {
    UlidIds.new_id("t")
}

fn scenario(
    account: i64,
    id: &str,
    trigger: &str,
    status: ScenarioStatus,
    at: i64,
) -> ScenarioRecord {
    let def: ScenarioDef = serde_json::from_value(json!({
        "name": format!("scenario {id}"),
        "trigger": {"type": trigger, "formId": 12},
        "start": "hook",
        "steps": [{"id": "hook", "type": "send_webhook", "url": "https://example.com/h", "next": null}]
    }))
    .unwrap();
    ScenarioRecord {
        id: id.to_string(),
        account,
        status,
        // fixed, so that a read can be compared with what was written
        secrets: [(
            "hook".to_string(),
            StepSecret {
                secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
                created_at: ts(at),
                previous: None,
                previous_valid_until: None,
            },
        )]
        .into(),
        def,
        created_at: ts(at),
        updated_at: ts(at),
    }
}

/// The contract of [`ScenarioStore`].
pub async fn scenario_store(store: &dyn ScenarioStore) {
    let u = unique();
    let account = 1_000 + (Timestamp::now().as_nanosecond() % 1_000_000) as i64 * 2;
    let other = account + 1;
    let ids: Vec<String> = (0..5).map(|i| format!("scn_{u}_{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        store
            .insert(&scenario(
                account,
                id,
                "form_subscribed",
                ScenarioStatus::Draft,
                i as i64,
            ))
            .await
            .unwrap();
    }
    let got = store.get(account, &ids[0]).await.unwrap().unwrap();
    assert_eq!(
        got,
        scenario(
            account,
            &ids[0],
            "form_subscribed",
            ScenarioStatus::Draft,
            0
        )
    );
    assert!(
        store.get(other, &ids[0]).await.unwrap().is_none(),
        "another account's scenario was visible"
    );
    assert!(store.get(account, "scn_missing").await.unwrap().is_none());

    // compare-and-set on the version read (status and updated_at)
    let mut active = got.clone();
    active.status = ScenarioStatus::Active;
    active.updated_at = ts(100);
    // an update stores the secrets too (a rotation)
    active.secrets = active.def.secrets(&Default::default(), ts(100));
    let rotated = active.secrets["hook"].rotated(ts(100));
    active.secrets.insert("hook".into(), rotated);
    assert!(store.update(&active, Version::of(&got)).await.unwrap());
    assert!(
        !store.update(&active, Version::of(&got)).await.unwrap(),
        "a stale update went through"
    );
    let mut foreign = active.clone();
    foreign.account = other;
    assert!(
        !store.update(&foreign, Version::of(&active)).await.unwrap(),
        "updated another account's scenario"
    );
    // two saves from one read, the status unchanged (a rotation racing a PUT of a draft, two
    // rotations): the second finds another version stored and writes nothing
    let read = store.get(account, &ids[1]).await.unwrap().unwrap();
    let mut edited = read.clone();
    edited.def.name = "edited".into();
    edited.updated_at = ts(200);
    let mut rotated = read.clone();
    let new_secret = rotated.secrets["hook"].rotated(ts(200));
    rotated.secrets.insert("hook".into(), new_secret);
    rotated.updated_at = ts(201);
    assert!(store.update(&rotated, Version::of(&read)).await.unwrap());
    assert!(
        !store.update(&edited, Version::of(&read)).await.unwrap(),
        "a save from an older version wrote it back"
    );
    assert_eq!(store.get(account, &ids[1]).await.unwrap().unwrap(), rotated);
    assert_eq!(store.get(account, &ids[0]).await.unwrap().unwrap(), active);

    // only active scenarios of that account and trigger type
    let found = store
        .active_for_trigger(account, "form_subscribed")
        .await
        .unwrap();
    assert_eq!(
        found.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        vec![ids[0].as_str()]
    );
    assert!(
        store
            .active_for_trigger(account, "group_added")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .active_for_trigger(other, "form_subscribed")
            .await
            .unwrap()
            .is_empty()
    );

    // pages, newest first, every item once
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store.list(account, cursor.as_deref(), 2).await.unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|s| s.id.clone()));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(seen, expected);
    assert!(store.list(other, None, 10).await.unwrap().items.is_empty());

    // several trigger types at once (the time-based ones, read by every event), each type alone
    let timed = other + 2; // an account of its own: the pages above stay as they were
    let kinds = ["date_reached", "consent_expiring", "form_subscribed"];
    for (i, kind) in kinds.iter().enumerate() {
        let id = format!("scn_{u}_t{i}");
        let s = scenario(timed, &id, kind, ScenarioStatus::Active, 0);
        store.insert(&s).await.unwrap();
    }
    let ids_of = |found: Vec<ScenarioRecord>| found.into_iter().map(|s| s.id).collect::<Vec<_>>();
    let time = store
        .active_for_triggers(timed, crate::domain::trigger::TIME_TRIGGERS)
        .await
        .unwrap();
    assert_eq!(ids_of(time), [format!("scn_{u}_t0"), format!("scn_{u}_t1")]);
    for (i, kind) in kinds.iter().enumerate() {
        let alone = store.active_for_trigger(timed, kind).await.unwrap();
        assert_eq!(ids_of(alone), [format!("scn_{u}_t{i}")], "{kind}");
    }
    // every active one of the account at once, whatever its trigger (not a draft, not another
    // account's); an archived one no longer, a re-activated one again
    let draft = scenario(
        timed,
        &format!("scn_{u}_t9"),
        "group_added",
        ScenarioStatus::Draft,
        0,
    );
    store.insert(&draft).await.unwrap();
    let all = [0, 1, 2].map(|i| format!("scn_{u}_t{i}"));
    assert_eq!(ids_of(store.active(timed).await.unwrap()), all);
    assert_eq!(
        ids_of(store.active(account).await.unwrap()),
        [ids[0].clone()]
    );
    let mut archived = store.get(timed, &all[1]).await.unwrap().unwrap();
    let read = Version::of(&archived);
    archived.status = ScenarioStatus::Archived;
    assert!(store.update(&archived, read).await.unwrap());
    assert_eq!(
        ids_of(store.active(timed).await.unwrap()),
        [all[0].clone(), all[2].clone()]
    );
    let mut again = archived.clone();
    again.status = ScenarioStatus::Active;
    assert!(store.update(&again, Version::of(&archived)).await.unwrap());
    assert_eq!(ids_of(store.active(timed).await.unwrap()), all);
}

/// The contract of [`ContactStore`].
pub async fn contact_store(store: &dyn ContactStore) {
    // an account of its own: `page` lists every contact of it
    let account = 2_000_000 + (Timestamp::now().as_nanosecond() % 1_000_000_000) as i64;
    let id = 42;
    let memo = |event: &str, scenarios: &[&str]| EventMemo {
        event_id: event.to_string(),
        scenarios: scenarios.iter().map(|s| s.to_string()).collect(),
    };
    let (e1, e2, e3) = (
        memo("e1", &["scn_a"]),
        memo("e2", &[]),
        memo("e3", &["scn_b"]),
    );
    let first = Contact::parse(
        json!({"id": id, "email": "a@example.org", "firstname": "Ann"}),
        "c",
    )
    .unwrap();
    assert_eq!(
        store.put(account, &first, ts(10), &e1).await.unwrap(),
        SnapshotPut::Applied { previous: None }
    );
    assert_eq!(store.get(account, id).await.unwrap(), Some(first.clone()));
    // the same event again: nothing written, its memo (as first stored) comes back
    let mut changed = e1.clone();
    changed.scenarios.push("scn_new".into());
    for _ in 0..2 {
        assert_eq!(
            store.put(account, &first, ts(10), &changed).await.unwrap(),
            SnapshotPut::Seen {
                memo: e1.clone(),
                stored: Some(first.clone())
            },
            "a repeat finds its first memo (and never replaces it)"
        );
    }
    let second = Contact::parse(
        json!({"id": id, "email": "b@example.org", "customFields": {"plan": "gold"}}),
        "c",
    )
    .unwrap();
    assert_eq!(
        store.put(account, &second, ts(20), &e2).await.unwrap(),
        SnapshotPut::Applied {
            previous: Some(first.clone())
        },
        "the previous snapshot is handed back"
    );
    assert_eq!(
        store.get(account, id).await.unwrap(),
        Some(second.clone()),
        "the snapshot was not replaced"
    );
    // an older snapshot arriving late does not replace a newer one (SPEC §3), nor is its
    // memo kept
    for _ in 0..2 {
        assert_eq!(
            store.put(account, &first, ts(15), &e3).await.unwrap(),
            SnapshotPut::Older
        );
    }
    assert_eq!(store.get(account, id).await.unwrap(), Some(second.clone()));
    // a repeat never puts its snapshot back over a later one, while its slot keeps its memo
    let e4 = (0..)
        .map(|i| memo(&format!("e4-{i}"), &[]))
        .find(|m| m.slot() != e1.slot() && m.slot() != e2.slot())
        .unwrap();
    let third = Contact::parse(json!({"id": id, "email": "c@example.org"}), "c").unwrap();
    assert_eq!(
        store.put(account, &third, ts(30), &e4).await.unwrap(),
        SnapshotPut::Applied {
            previous: Some(second.clone())
        }
    );
    assert_eq!(
        store.put(account, &second, ts(40), &e2).await.unwrap(),
        SnapshotPut::Seen {
            memo: e2.clone(),
            stored: Some(third.clone())
        }
    );
    assert_eq!(store.get(account, id).await.unwrap(), Some(third.clone()));
    // a tie replaces
    assert_eq!(
        store.put(account, &second, ts(30), &e3).await.unwrap(),
        SnapshotPut::Applied {
            previous: Some(third.clone())
        }
    );
    assert_eq!(store.get(account, id).await.unwrap(), Some(second.clone()));
    assert_eq!(
        store.put(account + 1, &first, ts(10), &e1).await.unwrap(),
        SnapshotPut::Applied { previous: None },
        "another account's memo was seen"
    );
    assert_eq!(
        store.get(account + 2, id).await.unwrap(),
        None,
        "another account's contact was visible"
    );
    // pages: every contact of the account exactly once, none of another account
    for other in 1..=4 {
        let c = Contact::parse(json!({"id": other, "email": "x@example.org"}), "c").unwrap();
        store.put(account, &c, ts(0), &e1).await.unwrap();
    }
    let stranger = Contact::parse(json!({"id": 7, "email": "s@example.org"}), "c").unwrap();
    store.put(account + 2, &stranger, ts(0), &e1).await.unwrap();
    let (mut seen, mut cursor) = (Vec::new(), None::<String>);
    for _ in 0..1_000 {
        let page = store.page(account, cursor.as_deref(), 2).await.unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|c| c.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, vec![1, 2, 3, 4, id]);
}

fn enrollment(id: &str, scenario: &str, contact: i64) -> Enrollment {
    Enrollment {
        id: id.to_string(),
        account: 3_000,
        scenario_id: scenario.to_string(),
        contact_id: contact,
        seq: 0,
        step_id: Some("first".into()),
        state: EnrollmentState::Active,
        created_at: ts(0),
    }
}

/// The contract of [`EnrollmentStore`].
pub async fn enrollment_store(store: &dyn EnrollmentStore) {
    let u = unique();
    // event answers: the first one stays
    let event_id = format!("evt-{u}");
    assert_eq!(store.event_answer(3_000, &event_id).await.unwrap(), None);
    let first = IntakeAnswer {
        event_id: event_id.clone(),
        enrollments: vec![EnrollmentRef {
            scenario_id: "scn_a".into(),
            enrollment_id: "enr_a".into(),
        }],
    };
    let second = IntakeAnswer {
        event_id: event_id.clone(),
        enrollments: vec![],
    };
    assert_eq!(store.save_event_answer(3_000, &first).await.unwrap(), first);
    assert_eq!(
        store.save_event_answer(3_000, &second).await.unwrap(),
        first
    );
    assert_eq!(
        store.event_answer(3_000, &event_id).await.unwrap(),
        Some(first)
    );
    assert_eq!(
        store.event_answer(3_001, &event_id).await.unwrap(),
        None,
        "another account's event"
    );

    // at most one entry per (scenario, contact) without re-entry: ids that name the entry
    let scn = format!("scn_{u}");
    let entered = |contact, origin: &str| {
        let id = entry_enrollment_id(3_000, &scn, contact, origin);
        enrollment(&id, &scn, contact)
    };
    let e1 = entered(7, "evt-1");
    assert_eq!(
        store.create(&e1, false).await.unwrap(),
        EnrollOutcome::Created
    );
    assert_eq!(
        store.create(&e1, false).await.unwrap(),
        EnrollOutcome::AlreadyExists
    );
    let e2 = entered(7, "evt-2");
    assert_eq!(
        store.create(&e2, false).await.unwrap(),
        EnrollOutcome::AlreadyEntered
    );
    assert_eq!(store.get(&e2.id).await.unwrap(), None);
    assert!(
        !store
            .advance(&e2.id, 0, Some("hook"), EnrollmentState::AwaitingDelivery)
            .await
            .unwrap(),
        "another event's enrollment moved the one that entered"
    );
    let again = enrollment(&format!("enr_{u}_2"), &scn, 7);
    assert_eq!(
        store.create(&again, true).await.unwrap(),
        EnrollOutcome::Created
    );
    let e3 = entered(8, "evt-1");
    assert_eq!(
        store.create(&e3, false).await.unwrap(),
        EnrollOutcome::Created
    );
    assert_eq!(store.get(&e1.id).await.unwrap(), Some(e1.clone()));

    // moves are a compare-and-set on seq
    assert!(
        store
            .advance(&e1.id, 0, Some("hook"), EnrollmentState::AwaitingDelivery)
            .await
            .unwrap()
    );
    assert!(
        !store
            .advance(&e1.id, 0, Some("other"), EnrollmentState::Active)
            .await
            .unwrap()
    );
    let got = store.get(&e1.id).await.unwrap().unwrap();
    assert_eq!(
        (got.seq, got.step_id.as_deref(), got.state),
        (1, Some("hook"), EnrollmentState::AwaitingDelivery)
    );
    assert!(
        store
            .advance(&e1.id, 1, None, EnrollmentState::Completed)
            .await
            .unwrap()
    );
    let got = store.get(&e1.id).await.unwrap().unwrap();
    assert_eq!(
        (got.seq, got.step_id, got.state),
        (2, None, EnrollmentState::Completed)
    );
    assert!(
        !store
            .advance("enr_missing", 0, None, EnrollmentState::Completed)
            .await
            .unwrap()
    );
}

/// Receives what a queue delivered (the adapter's own receive loop).
pub type Receive<'a> = &'a (dyn Fn() -> Pin<Box<dyn Future<Output = Vec<Task>> + Send>> + Sync);

/// `receive` takes (and acknowledges) the tasks that are due now.
pub async fn queue(queue: &dyn Queue, receive: Receive<'_>) {
    let u = unique();
    let now_task = Task::DeliverV1 {
        delivery_id: format!("dlv_{u}_now"),
        attempt: Some(0),
        deadline: None,
        slot: None,
        moved_at: None,
    };
    let later_task = Task::AdvanceV1 {
        enrollment_id: format!("enr_{u}"),
        step_id: Some("next".into()),
        seq: 3,
        not_before: None,
        at: None,
    };
    let start = Timestamp::now();
    queue.enqueue(&now_task, start).await.unwrap();
    queue
        .enqueue(
            &later_task,
            crate::domain::time::add(start, Duration::from_secs(2)),
        )
        .await
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..20 {
        got.extend(receive().await);
        if got.contains(&now_task) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(got.contains(&now_task), "a task due now was not received");
    assert!(!got.contains(&later_task), "a delayed task came early");
    let mut later = Vec::new();
    for _ in 0..60 {
        later.extend(receive().await);
        if later.contains(&later_task) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(later.contains(&later_task), "a delayed task never came");
    assert!(
        Timestamp::now().duration_since(start).as_secs_f64() >= 1.9,
        "a delayed task came early"
    );

    // many at once (batches): 23 tasks due now, each received once; one due in 2 s is not yet
    let many: Vec<(Task, Timestamp)> = (0..23)
        .map(|i| {
            let task = Task::DeliverV1 {
                delivery_id: format!("dlv_{u}_many_{i}"),
                attempt: Some(0),
                deadline: None,
                slot: None,
                moved_at: None,
            };
            (task, Timestamp::now())
        })
        .chain(std::iter::once((
            Task::DeliverV1 {
                delivery_id: format!("dlv_{u}_many_later"),
                attempt: Some(0),
                deadline: None,
                slot: None,
                moved_at: None,
            },
            crate::domain::time::add(Timestamp::now(), Duration::from_secs(2)),
        )))
        .collect();
    queue.enqueue_many(&many).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..40 {
        got.extend(receive().await);
        if got.len() >= 23 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (task, _) in &many[..23] {
        assert_eq!(
            got.iter().filter(|t| *t == task).count(),
            1,
            "{task:?} not received once"
        );
    }
    assert!(!got.contains(&many[23].0), "a delayed task came early");
}
