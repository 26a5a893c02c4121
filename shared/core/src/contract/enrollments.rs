//! The contract of [`EnrollmentStore`]: one entry per contact unless re-entry is allowed,
//! moves by compare-and-set, and the stored answers to events.

use super::{ts, unique};
use crate::domain::event::{EnrollmentRef, IntakeAnswer};
use crate::domain::ids::entry_enrollment_id;
use crate::ports::*;

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
