//! Timers on AWS (SPEC §6), played by this test's own firer on a clock it moves: SQS delivers a
//! message exactly `DelaySeconds` after it was sent, and EventBridge Scheduler fires a schedule
//! anywhere in the minute after its `at()` time — here always at the worst, 59 s late. The
//! handlers run on moto's DynamoDB; their sends are recorded by an SDK interceptor (and also
//! reach moto, where nothing reads them) and handed back to them when due.

#[path = "support/firer.rs"]
mod firer;
mod support;

use firer::{Firer, TestClock, Timer, engine, handle};

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookline_core::Hookline;
use hookline_core::domain::delivery::DeliveryStatus;
use hookline_core::domain::retry::RetryPolicy;
use hookline_core::domain::time::add;
use hookline_core::ports::Clock;
use hookline_local::receiver::{Receiver, ReceiverOptions};
use jiff::Timestamp;
use serde_json::json;
use support::Aws;

/// An engine on `firer`'s clock, a receiver answering `status`, an active one-webhook scenario
/// to it, and one contact sent in (its first attempt queued).
async fn one_contact_in(aws: &Aws, firer: &Firer, status: u16) -> (Hookline, Receiver, String) {
    let engine = engine(aws, firer);
    let rx = Receiver::start(
        "127.0.0.1:0",
        ReceiverOptions {
            status,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let id = engine
        .create_scenario(1, scenario(&rx.url("/hook")))
        .await
        .unwrap()
        .id;
    engine.activate_scenario(1, &id).await.unwrap();
    engine
        .intake(1, json!({"id": "e1", "type": "group_added", "contact": {"id": 1, "email": "a@example.org"}}))
        .await
        .unwrap();
    (engine, rx, id)
}

fn scenario(url: &str) -> serde_json::Value {
    json!({"name": "timers", "trigger": {"type": "group_added"}, "start": "hook",
           "steps": [{"id": "hook", "type": "send_webhook", "url": url, "next": null}]})
}

/// Window 60 min, delays 40 min: the retry (36–44 min) and the last attempt at the deadline
/// (16–24 min after it) both go through Scheduler, which fires 59 s late every time. Every
/// attempt starts at its due time (within the second SQS's delay rounds to), the last one at the
/// deadline: none is skipped, none is early.
#[tokio::test(flavor = "multi_thread")]
async fn a_scheduler_59_s_late_never_delays_or_skips_an_attempt() {
    let aws = Aws::fresh(RetryPolicy::parse("60m", "40m").unwrap()).await;
    // whole milliseconds: what the stores keep
    let start = Timestamp::from_millisecond(Timestamp::now().as_millisecond()).unwrap();
    let firer = Firer {
        clock: Arc::new(TestClock(Mutex::new(start))),
        timers: Arc::default(),
    };
    let (engine, rx, id) = one_contact_in(&aws, &firer, 503).await;

    let mut handled = 0;
    let mut schedules = 0;
    loop {
        let next = {
            let mut timers = firer.timers.lock().unwrap();
            timers.sort_by_key(|t| t.fires);
            (!timers.is_empty()).then(|| timers.remove(0))
        };
        let Some(timer) = next else { break };
        schedules += usize::from(timer.via_scheduler);
        firer.clock.set(timer.fires.max(firer.clock.now()));
        handle(&engine, &aws, &timer).await;
        handled += 1;
        assert!(handled < 50, "the timers never settled");
    }
    let delivery = engine
        .step_deliveries(1, &id, "hook", None, None, None)
        .await
        .unwrap()
        .items
        .remove(0);
    assert_eq!(delivery.status, DeliveryStatus::Failed, "{delivery:?}");
    assert_eq!(
        schedules, 2,
        "the retry and the last attempt both went through Scheduler"
    );
    let at: Vec<Timestamp> = delivery
        .attempts
        .iter()
        .map(|a| a.at.parse().unwrap())
        .collect();
    assert_eq!(at.len(), 3, "an attempt was skipped: {at:?}");
    let deadline: Timestamp = delivery.deadline.parse().unwrap();
    assert_eq!(deadline, add(start, Duration::from_secs(3600)));
    // the retry: 40 min ± 10 % after the first; the last: at the deadline, to the second
    let gap = at[1].duration_since(at[0]).as_secs();
    assert!((2160..=2641).contains(&gap), "retry after {gap} s");
    assert!(at[2] >= deadline, "the last attempt was early: {at:?}");
    assert!(
        at[2].duration_since(deadline).as_secs_f64() < 1.0,
        "the last attempt was {} s late",
        at[2].duration_since(deadline).as_secs_f64()
    );
    assert_eq!(rx.count(), 3);
}

/// A deliver message handled again after its attempt was recorded (an SQS redelivery) sends
/// nothing and queues nothing: one retry chain per delivery.
#[tokio::test(flavor = "multi_thread")]
async fn a_redelivered_message_never_starts_a_second_retry_chain() {
    let aws = Aws::fresh(RetryPolicy::parse("60s", "5s").unwrap()).await;
    let firer = Firer {
        clock: Arc::new(TestClock(Mutex::new(Timestamp::now()))),
        timers: Arc::default(),
    };
    let (engine, rx, id) = one_contact_in(&aws, &firer, 500).await;
    let take = || {
        let mut timers = firer.timers.lock().unwrap();
        timers.sort_by_key(|t| t.fires);
        (!timers.is_empty()).then(|| timers.remove(0))
    };
    // intake walked to the webhook step and queued its first attempt, the delivery in it
    let first = take().expect("the first deliver message");
    assert!(first.body.contains("deliver-first.v1"), "{first:?}");
    handle(&engine, &aws, &first).await;
    assert_eq!(rx.count(), 1);
    let pending: Vec<Timer> = firer.timers.lock().unwrap().clone();
    assert_eq!(pending.len(), 1, "one retry queued: {pending:?}");
    // the same message again, and again
    handle(&engine, &aws, &first).await;
    handle(&engine, &aws, &first).await;
    assert_eq!(
        rx.count(),
        1,
        "a redelivered message sent the webhook again"
    );
    let after: Vec<Timer> = firer.timers.lock().unwrap().clone();
    assert_eq!(
        after.len(),
        1,
        "a redelivered message queued a second chain: {after:?}"
    );
    // the retry itself runs once
    let retry = take().unwrap();
    firer.clock.set(retry.fires);
    handle(&engine, &aws, &retry).await;
    handle(&engine, &aws, &retry).await;
    assert_eq!(rx.count(), 2);
    aws.settle().await;
    let stats = engine.step_stats(1, &id, "hook").await.unwrap();
    assert_eq!((stats.passes, stats.pending), (1, Some(1)));
}

/// A first attempt queues its retry before it stores the delivery: a retry that comes first
/// (due at once: a first attempt made near the deadline) finds nothing stored, waits instead of
/// being dropped, and then makes its attempt — the last one is not lost.
#[tokio::test(flavor = "multi_thread")]
async fn a_retry_that_overtakes_its_delivery_waits_for_it() {
    use hookline_core::app::Outcome;
    use hookline_core::ports::Task;
    let aws = Aws::fresh(RetryPolicy::parse("60s", "5s").unwrap()).await;
    let firer = Firer {
        clock: Arc::new(TestClock(Mutex::new(Timestamp::now()))),
        timers: Arc::default(),
    };
    let (engine, rx, _) = one_contact_in(&aws, &firer, 500).await;
    let first = firer.timers.lock().unwrap().remove(0);
    let Ok(Task::DeliverFirstV1 { delivery, .. }) = serde_json::from_str::<Task>(&first.body)
    else {
        panic!("not a first attempt: {first:?}")
    };
    let retry = Task::DeliverV1 {
        delivery_id: delivery.id.clone(),
        attempt: Some(1),
        deadline: Some(delivery.deadline),
        slot: None,
        moved_at: None,
    };
    let early = engine.handle(&retry).await.unwrap();
    assert!(
        matches!(early, Outcome::RetryAt(_)),
        "a retry ahead of its delivery was dropped: {early:?}"
    );
    assert_eq!(rx.count(), 0);
    handle(&engine, &aws, &first).await; // the first attempt, refused, and its record
    assert_eq!(rx.count(), 1);
    firer
        .clock
        .set(add(firer.clock.now(), Duration::from_secs(10)));
    assert_eq!(engine.handle(&retry).await.unwrap(), Outcome::Done);
    assert_eq!(rx.count(), 2, "the waiting retry made its attempt");
}
