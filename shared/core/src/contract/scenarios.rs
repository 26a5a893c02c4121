//! The contract of [`ScenarioStore`]: scenarios by account, listed newest first, saved with a
//! compare-and-set on their version, found active by trigger.

use jiff::Timestamp;

use super::{scenario, ts, unique};
use crate::domain::scenario::{ScenarioRecord, ScenarioStatus};
use crate::ports::*;

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
