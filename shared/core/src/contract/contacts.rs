//! The contract of [`ContactStore`]: the latest snapshot per contact, in the order they
//! occurred, with the memos of their events.

use jiff::Timestamp;
use serde_json::json;

use super::ts;
use crate::domain::contact::Contact;
use crate::domain::event::EventMemo;
use crate::ports::*;

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
