//! The contract of [`DeliveryStore`]: passes made once, deliveries with their attempts
//! (compare-and-set, the first and the last 19 kept), resends, the list, and the counters.

use super::{ts, unique};
use crate::domain::delivery::{Attempt, Delivery, DeliveryStatus, Handoff};
use crate::domain::ids::delivery_id;
use crate::ports::*;

/// A pending delivery of the step `hook`; `name` makes its id unique (ids are made by
/// [`delivery_id`]: a store may key a delivery by what its id names).
pub(crate) fn delivery(name: &str, scenario: &str, contact: i64, created: i64) -> Delivery {
    delivery_on(name, scenario, "hook", contact, created)
}

/// The same, of another webhook step.
pub(crate) fn delivery_on(
    name: &str,
    scenario: &str,
    step: &str,
    contact: i64,
    created: i64,
) -> Delivery {
    let id = delivery_id(scenario, step, ts(created), &[name]);
    Delivery {
        account: 4_000,
        scenario_id: scenario.to_string(),
        step_id: step.into(),
        contact_id: contact,
        handoff: Handoff {
            enrollment_id: format!("enr_{name}"),
            next_step: Some("after".into()),
            seq: 1,
        },
        url: "https://example.com/h".into(),
        headers: vec![("X-Api-Key".into(), "secret".into())],
        payload: r#"{"id":"evt_1","data":{"type":"member"}}"#.into(),
        status: DeliveryStatus::Pending,
        created_at: ts(created),
        deadline: ts(created + 43_200),
        next_attempt_at: Some(ts(created)),
        attempt_count: 0,
        attempts: vec![],
        id,
    }
}

pub(crate) fn pass(key: &str, scenario: &str, step: &str, contact: i64) -> Pass {
    Pass {
        key: key.to_string(),
        account: 4_000,
        scenario_id: scenario.to_string(),
        step_id: step.to_string(),
        contact_id: contact,
        at: ts(0),
        first_for_contact: false,
    }
}

pub(crate) fn attempt(status: Option<u16>) -> Attempt {
    Attempt {
        at: ts(1),
        status,
        error: status.filter(|s| *s >= 300).map(|s| format!("HTTP {s}")),
        duration_ms: 12,
        response_snippet: Some("ok".into()),
    }
}

/// The contract of [`DeliveryStore`].
pub async fn delivery_store(store: &dyn DeliveryStore) {
    let u = unique();
    let scn = format!("scn_{u}");
    let counts = |c: &[StepCounts], step: &str| {
        c.iter()
            .find(|x| x.step_id == step)
            .cloned()
            .unwrap_or_default()
    };

    // passes are idempotent by key; a webhook pass carries its delivery
    assert!(
        store
            .record_pass(&pass(&format!("{u}:a"), &scn, "cond", 1), None)
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_pass(&pass(&format!("{u}:a"), &scn, "cond", 1), None)
            .await
            .unwrap()
    );
    assert!(
        store
            .record_pass(&pass(&format!("{u}:b"), &scn, "cond", 1), None)
            .await
            .unwrap()
    );
    let d: Vec<Delivery> = (0..3)
        .map(|i| delivery(&format!("dlv_{u}_{i}"), &scn, 10 + (i % 2), i))
        .collect();
    for (i, dl) in d.iter().enumerate() {
        let p = pass(&format!("{u}:hook:{i}"), &scn, "hook", dl.contact_id);
        assert!(store.record_pass(&p, Some(dl)).await.unwrap());
        assert!(
            !store.record_pass(&p, Some(dl)).await.unwrap(),
            "a repeated pass was counted"
        );
    }
    assert_eq!(store.get(&d[0].id).await.unwrap(), Some(d[0].clone()));
    assert_eq!(store.get("dlv_missing").await.unwrap(), None);

    let c = store.step_counts(4_000, &scn).await.unwrap();
    assert_eq!(
        counts(&c, "cond"),
        StepCounts {
            step_id: "cond".into(),
            passes: 2,
            unique_contacts: 1,
            ..Default::default()
        }
    );
    assert_eq!(
        counts(&c, "hook"),
        StepCounts {
            step_id: "hook".into(),
            passes: 3,
            unique_contacts: 2,
            pending: 3,
            ..Default::default()
        }
    );
    assert!(
        store
            .step_counts(4_001, &scn)
            .await
            .unwrap()
            .iter()
            .all(|c| c.passes == 0),
        "another account's counts"
    );

    // attempts: a compare-and-set on the attempt count; statistics move with the status
    let fresh = d[0].clone();
    assert!(
        store
            .record_attempt(
                &fresh,
                Some(&attempt(Some(500))),
                DeliveryStatus::Pending,
                Some(ts(10))
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_attempt(
                &fresh,
                Some(&attempt(Some(500))),
                DeliveryStatus::Pending,
                Some(ts(10))
            )
            .await
            .unwrap(),
        "a stale attempt was recorded"
    );
    let once = store.get(&d[0].id).await.unwrap().unwrap();
    assert_eq!(
        (once.attempts.len(), once.next_attempt_at),
        (1, Some(ts(10)))
    );
    assert!(
        store
            .record_attempt(
                &once,
                Some(&attempt(Some(200))),
                DeliveryStatus::Accepted,
                None
            )
            .await
            .unwrap()
    );
    let settled = store.get(&d[0].id).await.unwrap().unwrap();
    assert!(
        !store
            .record_attempt(
                &settled,
                Some(&attempt(Some(200))),
                DeliveryStatus::Accepted,
                None
            )
            .await
            .unwrap(),
        "a settled delivery changed"
    );
    assert!(
        store
            .record_attempt(&d[1], None, DeliveryStatus::Failed, None)
            .await
            .unwrap()
    );
    let got = store.get(&d[0].id).await.unwrap().unwrap();
    assert_eq!(got.status, DeliveryStatus::Accepted);
    assert_eq!(got.attempts, vec![attempt(Some(500)), attempt(Some(200))]);
    assert_eq!(got.next_attempt_at, None);
    assert_eq!(store.get(&d[1].id).await.unwrap().unwrap().attempts, vec![]);
    let c = counts(&store.step_counts(4_000, &scn).await.unwrap(), "hook");
    assert_eq!((c.passes, c.accepted, c.pending, c.failed), (3, 1, 1, 1));

    // the list: newest first, pages, status filter, account isolation
    let filter = |status, cursor, limit| DeliveryFilter {
        account: 4_000,
        scenario_id: &scn,
        step_id: "hook",
        status,
        since: None,
        cursor,
        limit,
    };
    let page = store.list(&filter(None, None, 2)).await.unwrap();
    assert_eq!(
        page.items.iter().map(|d| d.id.clone()).collect::<Vec<_>>(),
        vec![d[2].id.clone(), d[1].id.clone()]
    );
    let rest = store
        .list(&filter(None, page.next_cursor.as_deref(), 2))
        .await
        .unwrap();
    assert_eq!(
        rest.items.iter().map(|d| d.id.clone()).collect::<Vec<_>>(),
        vec![d[0].id.clone()]
    );
    assert_eq!(rest.next_cursor, None);
    let accepted = store
        .list(&filter(Some(DeliveryStatus::Accepted), None, 10))
        .await
        .unwrap();
    assert_eq!(accepted.items.len(), 1);
    assert_eq!(accepted.items[0].id, d[0].id);
    // a filtered page of one, its match behind newer deliveries of other statuses
    for (status, i) in [
        (DeliveryStatus::Accepted, 0),
        (DeliveryStatus::Failed, 1),
        (DeliveryStatus::Pending, 2),
    ] {
        let page = store.list(&filter(Some(status), None, 1)).await.unwrap();
        assert_eq!(
            (
                page.items.iter().map(|d| d.id.clone()).collect::<Vec<_>>(),
                page.next_cursor
            ),
            (vec![d[i].id.clone()], None),
            "{status:?}"
        );
    }
    // `since`: only those created at or after it, in pages
    let mut since = filter(None, None, 1);
    since.since = Some(d[1].created_at);
    let first = store.list(&since).await.unwrap();
    assert_eq!(
        first.items.iter().map(|d| &d.id).collect::<Vec<_>>(),
        [&d[2].id]
    );
    since.cursor = first.next_cursor.as_deref();
    let second = store.list(&since).await.unwrap();
    assert_eq!(
        (
            second.items.iter().map(|d| &d.id).collect::<Vec<_>>(),
            second.next_cursor
        ),
        (vec![&d[1].id], None)
    );
    let mut failed_since = filter(Some(DeliveryStatus::Failed), None, 10);
    failed_since.since = Some(d[2].created_at);
    assert!(store.list(&failed_since).await.unwrap().items.is_empty());
    let mut foreign = filter(None, None, 10);
    foreign.account = 4_001;
    assert!(store.list(&foreign).await.unwrap().items.is_empty());
    let bad = store
        .list(&filter(None, Some("not-a-cursor"), 2))
        .await
        .unwrap_err();
    assert!(bad.is::<BadCursor>(), "{bad}");

    // resend: only a failed delivery, a compare-and-set on the attempt count; refused, it
    // stays failed with one attempt more; accepted, it and its counters move failed → accepted
    let failed = store.get(&d[1].id).await.unwrap().unwrap();
    assert!(
        !store
            .record_resend(&got, &attempt(Some(200)), true)
            .await
            .unwrap(),
        "an accepted delivery was resent"
    );
    assert!(
        store
            .record_resend(&failed, &attempt(Some(503)), false)
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_resend(&failed, &attempt(Some(200)), true)
            .await
            .unwrap(),
        "a stale resend was recorded"
    );
    let refused = store.get(&d[1].id).await.unwrap().unwrap();
    assert_eq!(
        (refused.status, refused.attempts.clone()),
        (DeliveryStatus::Failed, vec![attempt(Some(503))])
    );
    let c = counts(&store.step_counts(4_000, &scn).await.unwrap(), "hook");
    assert_eq!((c.passes, c.accepted, c.pending, c.failed), (3, 1, 1, 1));
    assert!(
        store
            .record_resend(&refused, &attempt(Some(200)), true)
            .await
            .unwrap()
    );
    let resent = store.get(&d[1].id).await.unwrap().unwrap();
    assert_eq!(resent.status, DeliveryStatus::Accepted);
    assert_eq!(resent.attempts.len(), 2);
    let c = counts(&store.step_counts(4_000, &scn).await.unwrap(), "hook");
    assert_eq!((c.passes, c.accepted, c.pending, c.failed), (3, 2, 1, 0));

    // no record grows without bound: the first attempt and the last 19 are kept, and the count
    for i in 0..25u16 {
        let now = store.get(&d[2].id).await.unwrap().unwrap();
        assert_eq!(now.attempt_count, u32::from(i));
        assert!(
            store
                .record_attempt(
                    &now,
                    Some(&attempt(Some(500 + i))),
                    DeliveryStatus::Pending,
                    Some(ts(20))
                )
                .await
                .unwrap()
        );
    }
    let long = store.get(&d[2].id).await.unwrap().unwrap();
    assert_eq!(long.attempt_count, 25);
    let kept: Vec<u16> = long.attempts.iter().filter_map(|a| a.status).collect();
    let mut want = vec![500];
    want.extend(506..525);
    assert_eq!(kept, want);

    // a pass known to be the contact's first (no re-entry): counted once, a repeat is not
    let mut first = pass(&format!("{u}:gate"), &scn, "gate", 77);
    first.first_for_contact = true;
    assert!(store.record_pass(&first, None).await.unwrap());
    assert!(!store.record_pass(&first, None).await.unwrap());
    let mut hooked = pass(&format!("{u}:gate-hook"), &scn, "gate-hook", 77);
    hooked.first_for_contact = true;
    let dl = delivery_on(&format!("dlv_{u}_gate"), &scn, "gate-hook", 77, 9);
    assert!(store.record_pass(&hooked, Some(&dl)).await.unwrap());
    assert!(!store.record_pass(&hooked, Some(&dl)).await.unwrap());
    let all = store.step_counts(4_000, &scn).await.unwrap();
    let gate = counts(&all, "gate");
    assert_eq!((gate.passes, gate.unique_contacts), (1, 1));
    let gate_hook = counts(&all, "gate-hook");
    assert_eq!(
        (
            gate_hook.passes,
            gate_hook.unique_contacts,
            gate_hook.pending
        ),
        (1, 1, 1)
    );

    // a delivery recorded with its pass after its first attempt (the queued path): stored
    // as given, counted at once under the status that attempt gave it
    for (i, (answer, status, next)) in [
        (200, DeliveryStatus::Accepted, None),
        (503, DeliveryStatus::Pending, Some(ts(70))),
    ]
    .into_iter()
    .enumerate()
    {
        let mut dl = delivery_on(
            &format!("dlv_{u}_after_{i}"),
            &scn,
            "after-attempt",
            80 + i as i64,
            10,
        );
        dl.attempts = vec![attempt(Some(answer))];
        dl.attempt_count = 1;
        dl.status = status;
        dl.next_attempt_at = next;
        let p = pass(
            &format!("{u}:after:{i}"),
            &scn,
            "after-attempt",
            dl.contact_id,
        );
        assert!(store.record_pass(&p, Some(&dl)).await.unwrap());
        assert!(!store.record_pass(&p, Some(&dl)).await.unwrap());
        let got = store.get(&dl.id).await.unwrap().unwrap();
        if dl.status == DeliveryStatus::Accepted {
            // its request may not be kept: nothing sends an accepted delivery again
            let mut without = dl.clone();
            (without.url, without.headers, without.payload) = Default::default();
            assert!(got == dl || got == without, "{got:?}");
        } else {
            assert_eq!(got, dl);
        }
        let listed = store
            .list(&DeliveryFilter {
                account: 4_000,
                scenario_id: &scn,
                step_id: "after-attempt",
                status: Some(dl.status),
                since: None,
                cursor: None,
                limit: 10,
            })
            .await
            .unwrap();
        assert_eq!(listed.items.len(), 1, "{:?}", dl.status);
    }
    let after = counts(
        &store.step_counts(4_000, &scn).await.unwrap(),
        "after-attempt",
    );
    assert_eq!(
        (after.passes, after.accepted, after.pending, after.failed),
        (2, 1, 1, 0)
    );
}
