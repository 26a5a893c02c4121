//! The destinations' board of a runtime whose attempts are made by many processes
//! ([`DestinationBoard::gate`]): pace, pauses and the circuit are shared by every process
//! (`instance()` makes a new one over the same store, with nothing in memory), and the board
//! reads what they keep. (Local mode holds deliveries in its workers and has no gate.)

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use super::unique;
use crate::domain::destination::{Answer, FAILURES_TO_FAIL, Health, PROBE_FIRST};
use crate::domain::time::add;
use crate::ports::{DestinationBoard, Gate};

fn secs(a: Timestamp, b: Timestamp) -> f64 {
    (a.as_millisecond() - b.as_millisecond()) as f64 / 1000.0
}

/// The [`DestinationGate`] contract: run against every adapter that has a gate.
pub async fn destination_gate(instance: impl Fn() -> Arc<dyn DestinationBoard>) {
    let account = 1_000 + (Timestamp::now().as_millisecond() % 1_000_000);
    let u = unique();
    let far = add(Timestamp::now(), Duration::from_secs(3600));
    let (a, b) = (instance(), instance());
    let (ga, gb) = (a.gate().unwrap(), b.gate().unwrap());

    // a healthy destination: both go, and nothing is kept about it
    let healthy = format!("https://example.com/{u}/healthy");
    for g in [ga, gb] {
        assert!(matches!(
            g.admit(account, &healthy, None, None, far).await.unwrap(),
            Gate::Go { probe: false, .. }
        ));
        g.finished(account, &healthy, Timestamp::now(), Answer::Accepted, None)
            .await
            .unwrap();
    }
    assert_eq!(a.get(account, &healthy).await.unwrap(), None);

    // a configured pace of 0.25/s is shared: one start every 4 s, whoever asks
    let paced = format!("https://example.com/{u}/paced");
    let t0 = Timestamp::now();
    assert!(matches!(
        ga.admit(account, &paced, Some(0.25), None, far)
            .await
            .unwrap(),
        Gate::Go { probe: false, .. }
    ));
    let Gate::Wait {
        until: second,
        reserved: true,
        ..
    } = gb
        .admit(account, &paced, Some(0.25), None, far)
        .await
        .unwrap()
    else {
        panic!("the second start within 4 s was not held back with a reserved start");
    };
    assert!(
        (3.5..=4.5).contains(&secs(second, t0)),
        "{}",
        secs(second, t0)
    );
    let Gate::Wait { until: third, .. } = ga
        .admit(account, &paced, Some(0.25), None, far)
        .await
        .unwrap()
    else {
        panic!("the third start was not held back");
    };
    assert!(
        (7.5..=8.5).contains(&secs(third, t0)),
        "{}",
        secs(third, t0)
    );
    // no start is reserved past the deadline
    let soon = add(Timestamp::now(), Duration::from_secs(2));
    match gb
        .admit(account, &paced, Some(0.25), None, soon)
        .await
        .unwrap()
    {
        Gate::Wait {
            reserved: false,
            until,
            ..
        } => assert!(until <= soon),
        other => panic!("{other:?}"),
    }

    // a refusal at one instance pauses the destination at the other
    let refusing = format!("https://example.com/{u}/refusing");
    assert!(matches!(
        ga.admit(account, &refusing, None, None, far).await.unwrap(),
        Gate::Go { .. }
    ));
    let refused = Answer::Refused {
        retry_after: Some(Duration::from_secs(3)),
    };
    ga.finished(account, &refusing, Timestamp::now(), refused, Some("429"))
        .await
        .unwrap();
    match gb.admit(account, &refusing, None, None, far).await.unwrap() {
        Gate::Wait { until, health, .. } => {
            assert_eq!(health, Health::Throttled);
            assert!(secs(until, Timestamp::now()) > 2.0);
        }
        other => panic!("not paused at the other instance: {other:?}"),
    }

    // failures in a row counted over both instances: the 5th makes it failing
    let failing = format!("https://example.com/{u}/failing");
    for i in 0..FAILURES_TO_FAIL {
        let g = if i % 2 == 0 { ga } else { gb };
        assert!(matches!(
            g.admit(account, &failing, None, None, far).await.unwrap(),
            Gate::Go { probe: false, .. }
        ));
        g.finished(
            account,
            &failing,
            Timestamp::now(),
            Answer::Failed,
            Some("503"),
        )
        .await
        .unwrap();
    }
    // at once where it was seen, within a second (the cache of a read) at the other
    for (g, after) in [(ga, 0), (gb, 1_100)] {
        tokio::time::sleep(Duration::from_millis(after)).await;
        match g.admit(account, &failing, None, None, far).await.unwrap() {
            Gate::Wait { health, .. } => assert_eq!(health, Health::Failing),
            other => panic!("failing, yet {other:?}"),
        }
    }
    let kept = b.get(account, &failing).await.unwrap().unwrap();
    assert!(kept.state.failing_since.is_some());
    assert_eq!(kept.state.last_error.as_deref(), Some("503"));
    // one probe at a time, after PROBE_FIRST
    tokio::time::sleep(PROBE_FIRST.saturating_sub(Duration::from_millis(1_000))).await;
    assert!(matches!(
        ga.admit(account, &failing, None, None, far).await.unwrap(),
        Gate::Go { probe: true, .. }
    ));
    tokio::time::sleep(Duration::from_millis(300)).await; // past b's cache of a hold
    match gb.admit(account, &failing, None, None, far).await.unwrap() {
        Gate::Wait { health, .. } => assert_eq!(health, Health::Failing),
        other => panic!("a second probe at once: {other:?}"),
    }
    // the first accepted probe heals it for everybody
    ga.finished(account, &failing, Timestamp::now(), Answer::Accepted, None)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(matches!(
        gb.admit(account, &failing, None, None, far).await.unwrap(),
        Gate::Go { probe: false, .. }
    ));
    let kept = a.get(account, &failing).await.unwrap().unwrap();
    assert_eq!(kept.state.failing_since, None);
    assert_eq!(kept.state.failures, 0);

    // the board lists what it keeps, by account
    let mut urls = instance().urls(account).await.unwrap();
    urls.sort();
    let mut expected = vec![paced, refusing, failing];
    expected.sort();
    assert_eq!(urls, expected);
    assert!(instance().urls(account + 1).await.unwrap().is_empty());
}
