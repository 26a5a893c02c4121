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

async fn minute(store: &dyn OccurrenceStore, at_secs: i64, scenario: &str) -> Vec<Scheduled> {
    let mut found: Vec<Scheduled> = store
        .in_minute(minute_of(ts(at_secs)))
        .await
        .unwrap()
        .into_iter()
        .filter(|o| o.scenario_id == scenario) // suites may share a store
        .collect();
    found.sort();
    found
}

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

    // the sweep cursor only moves forward
    let base = minute_of(ts(0)) + 1_000_000 + (unique().len() as i64);
    let before = store.swept().await.unwrap();
    store.set_swept(base + 5).await.unwrap();
    assert!(store.swept().await.unwrap() >= Some(base + 5));
    store.set_swept(base + 2).await.unwrap();
    let after = store.swept().await.unwrap();
    assert!(after >= Some(base + 5), "the cursor moved back: {after:?}");
    assert!(after >= before);
}
