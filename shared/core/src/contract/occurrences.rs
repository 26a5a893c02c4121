//! The contract of [`OccurrenceStore`]: occurrences found by their minute, cancelled exactly,
//! and a sweep cursor that never moves back.

use jiff::civil::date;

use super::{ts, unique};
use crate::ports::*;

fn occurrence(scenario: &str, contact: i64, day: i8, secs: i64) -> Scheduled {
    Scheduled {
        account: 5_000,
        scenario_id: scenario.to_string(),
        contact_id: contact,
        date: date(2027, 1, day),
        at: ts(secs),
    }
}

/// Every occurrence of the minute of `ts(at_secs)`, read in pages of 2.
async fn minute(store: &dyn OccurrenceStore, at_secs: i64, scenario: &str) -> Vec<Scheduled> {
    let mut found = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1_000 {
        let page = store
            .in_minute(minute_of(ts(at_secs)), cursor.as_deref(), 2)
            .await
            .unwrap();
        assert!(page.items.len() <= 2, "a page over its limit");
        found.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    found.retain(|o| o.scenario_id == scenario); // suites may share a store
    found.sort();
    let mut unique = found.clone();
    unique.dedup();
    assert_eq!(unique, found, "an occurrence in two pages");
    found
}

/// The contract of [`OccurrenceStore`].
pub async fn occurrence_store(store: &dyn OccurrenceStore) {
    let scenario = format!("scn_{}", unique());
    // ts(0) is 1_800_000_000 s: a minute starts at ts(0) (1_800_000_000 = 30_000_000 × 60)
    let a = occurrence(&scenario, 1, 1, 0);
    let b = occurrence(&scenario, 2, 1, 59);
    let c = occurrence(&scenario, 3, 1, 60);
    store
        .schedule(&[a.clone(), b.clone(), c.clone()])
        .await
        .unwrap();
    store.schedule(std::slice::from_ref(&a)).await.unwrap(); // again: no duplicate
    assert_eq!(
        minute(store, 0, &scenario).await,
        vec![a.clone(), b.clone()]
    );
    assert_eq!(minute(store, 60, &scenario).await, vec![c.clone()]);

    // cancel removes exactly that occurrence (same scenario, contact and date)
    let other_date = Scheduled {
        date: date(2028, 1, 1),
        ..b.clone()
    };
    store.cancel(&[other_date]).await.unwrap();
    let other_instant = Scheduled {
        at: ts(1_800), // half an hour later: another minute
        ..b.clone()
    };
    store.cancel(&[other_instant]).await.unwrap();
    assert_eq!(
        minute(store, 0, &scenario).await,
        vec![a.clone(), b.clone()]
    );
    store.cancel(&[b.clone()]).await.unwrap();
    assert_eq!(minute(store, 0, &scenario).await, vec![a.clone()]);
    store.cancel(&[b.clone()]).await.unwrap(); // absent: nothing happens

    // two occurrences of one (scenario, contact): a year apart, each in its own minute
    let next_year = Scheduled {
        date: date(2028, 1, 1),
        at: ts(365 * 86_400),
        ..a.clone()
    };
    store
        .schedule(std::slice::from_ref(&next_year))
        .await
        .unwrap();
    assert_eq!(minute(store, 0, &scenario).await, vec![a.clone()]);
    assert_eq!(
        minute(store, 365 * 86_400, &scenario).await,
        vec![next_year.clone()]
    );
    store.cancel(&[a, c, next_year]).await.unwrap();
    assert!(minute(store, 0, &scenario).await.is_empty());

    // the sweep's progress: a minute and a page cursor in the next; never back to an earlier
    // minute (suites may share the store: only "at least" can be asserted across them)
    let at = |minute: i64, cursor: Option<&str>| SweepState {
        minute,
        cursor: cursor.map(str::to_string),
    };
    let base = store.swept().await.unwrap().map_or(0, |s| s.minute) + 1_000;
    store.set_swept(&at(base, None)).await.unwrap();
    assert_eq!(store.swept().await.unwrap(), Some(at(base, None)));
    store.set_swept(&at(base, Some("page-2"))).await.unwrap();
    assert_eq!(store.swept().await.unwrap(), Some(at(base, Some("page-2"))));
    store.set_swept(&at(base + 1, None)).await.unwrap();
    assert_eq!(store.swept().await.unwrap(), Some(at(base + 1, None)));
    store.set_swept(&at(base - 5, Some("old"))).await.unwrap();
    assert_eq!(
        store.swept().await.unwrap(),
        Some(at(base + 1, None)),
        "the sweep moved back"
    );
}
