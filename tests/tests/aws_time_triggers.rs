//! Time-based triggers on AWS (SPEC §3) over moto, with the test's own timer firer on a clock
//! it moves (`support/firer.rs`): occurrences due soon go to the queue with their delay; later
//! ones wait under their minute in DynamoDB until the one-minute tick sweeps them.

#[path = "support/firer.rs"]
mod firer;
mod support;

use std::collections::BTreeSet;

use firer::{Firer, engine, handle};
use hookline_core::Hookline;
use hookline_core::domain::retry::RetryPolicy;
use hookline_core::ports::{OccurrenceStore, minute_of};
use hookline_local::receiver::{Receiver, ReceiverOptions};
use jiff::Timestamp;
use serde_json::{Value, json};
use support::Aws;

fn birthday(url: &str) -> Value {
    json!({"name": "birthday", "trigger": {"type": "date_reached", "field": "birthDate",
           "yearly": true, "time": "09:00"}, "start": "hook",
           "steps": [{"id": "hook", "type": "send_webhook", "url": url,
                      "fields": ["email"], "next": null}]})
}

async fn event(engine: &Hookline, id: &str, contact: i64, birth: &str, occurred_at: &str) {
    engine
        .intake(
            1,
            json!({"id": id, "type": "contact_updated", "occurredAt": occurred_at,
                   "contact": {"id": contact, "email": format!("p{contact}@example.org"),
                               "birthDate": birth}}),
        )
        .await
        .unwrap();
}

/// Hands every timer due by `until` to the handlers, in time order (the clock follows).
async fn run_until(engine: &Hookline, aws: &Aws, firer: &Firer, until: Timestamp) -> usize {
    let mut handled = 0;
    loop {
        let next = firer.take();
        let Some(timer) = next else { break };
        if timer.fires > until {
            firer.timers.lock().unwrap().push(timer);
            break;
        }
        if timer.fires > now(firer) {
            firer.clock.set(timer.fires);
        }
        handle(engine, aws, &timer).await;
        handled += 1;
        assert!(handled < 200, "the timers never settled");
    }
    handled
}

fn now(firer: &Firer) -> Timestamp {
    use hookline_core::ports::Clock;
    firer.clock.now()
}

/// (path, email, envelope id) of every request, and the distinct envelope ids per email.
fn fired(rx: &Receiver) -> BTreeSet<(String, String)> {
    rx.received()
        .iter()
        .map(|r| {
            let body = r.json();
            (
                body["data"]["email"].as_str().unwrap_or("").to_string(),
                body["id"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Creates and activates a scenario of account 1; its id.
async fn active(engine: &Hookline, def: Value) -> String {
    let id = engine.create_scenario(1, def).await.unwrap().id;
    engine.activate_scenario(1, &id).await.unwrap();
    id
}

/// The fire messages the firer holds.
fn fire_timers(firer: &Firer) -> Vec<firer::Timer> {
    firer
        .timers
        .lock()
        .unwrap()
        .iter()
        .filter(|t| t.body.contains("fire.v1"))
        .cloned()
        .collect()
}

/// Every occurrence stored under `at`'s minute.
async fn stored_in_minute(aws: &Aws, at: Timestamp) -> Vec<hookline_core::ports::Scheduled> {
    let page = aws
        .store()
        .in_minute(minute_of(at), None, 1_000)
        .await
        .unwrap();
    assert!(page.next_cursor.is_none());
    page.items
}

async fn receiver() -> Receiver {
    Receiver::start("127.0.0.1:0", ReceiverOptions::default())
        .await
        .unwrap()
}

/// Due within two minutes of being known: queued with its delay, fired at 09:00 sharp; a date
/// moved away by a newer snapshot, and an older snapshot arriving late, change nothing wrong.
#[tokio::test(flavor = "multi_thread")]
async fn a_birthday_due_soon_fires_once_at_its_time() {
    let aws = Aws::fresh(RetryPolicy::default()).await;
    let firer = Firer::at("2027-05-01T08:59:30Z".parse().unwrap());
    let engine = engine(&aws, &firer);
    let rx = receiver().await;
    // stored before the activation: the backfill (a scan, page by page) finds it
    event(&engine, "e0", 9, "2000-05-01", "2027-05-01T08:00:00Z").await;
    let id = active(&engine, birthday(&rx.url("/b"))).await;
    event(&engine, "e1", 1, "1990-05-01", "2027-05-01T08:00:00Z").await;
    event(&engine, "e2", 2, "1990-05-01", "2027-05-01T08:00:00Z").await;
    event(&engine, "e3", 2, "1990-06-01", "2027-05-01T08:30:00Z").await; // moved: no
    event(&engine, "e4", 3, "1990-05-01", "2027-05-01T08:30:00Z").await;
    event(&engine, "e5", 3, "1990-07-01", "2027-05-01T08:10:00Z").await; // older: ignored
    // nothing before 09:00
    run_until(
        &engine,
        &aws,
        &firer,
        "2027-05-01T08:59:59Z".parse().unwrap(),
    )
    .await;
    assert_eq!(rx.count(), 0, "fired early");
    run_until(
        &engine,
        &aws,
        &firer,
        "2027-05-01T09:05:00Z".parse().unwrap(),
    )
    .await;
    let got = fired(&rx);
    let emails: BTreeSet<&str> = got.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        emails,
        BTreeSet::from(["p1@example.org", "p3@example.org", "p9@example.org"]),
        "{got:?}"
    );
    assert_eq!(got.len(), 3, "an occurrence fired twice: {got:?}");
    aws.settle().await;
    let stats = engine.step_stats(1, &id, "hook").await.unwrap();
    assert_eq!(stats.passes, 3);
    // the next year's occurrences wait under their minute
    let next: Timestamp = "2028-05-01T09:00:00Z".parse().unwrap();
    let waiting = stored_in_minute(&aws, next).await;
    let contacts: BTreeSet<i64> = waiting.iter().map(|o| o.contact_id).collect();
    assert_eq!(contacts, BTreeSet::from([1, 3, 9]), "{waiting:?}");
    // another event the same day plans today's occurrence again (a rolling 24 hours): it
    // fires nothing more, and next year's stays
    event(&engine, "e6", 1, "1990-05-01", "2027-05-01T09:05:00Z").await;
    run_until(
        &engine,
        &aws,
        &firer,
        "2027-05-01T09:10:00Z".parse().unwrap(),
    )
    .await;
    assert_eq!(fired(&rx), got, "fired again the same day");
    let waiting = stored_in_minute(&aws, next).await;
    let contacts: BTreeSet<i64> = waiting.iter().map(|o| o.contact_id).collect();
    assert_eq!(contacts, BTreeSet::from([1, 3, 9]), "{waiting:?}");
}

/// Known an hour ahead: it waits under 09:00's minute; the tick sweeps every minute since the
/// last one it finished up to the one after its own (a late or lost tick catches up), queues
/// it to arrive at its second, and it fires once however often its message is handled. An
/// archived scenario's occurrence fires nothing.
#[tokio::test(flavor = "multi_thread")]
async fn the_tick_sweeps_every_minute_since_the_last_and_fires_once() {
    let aws = Aws::fresh(RetryPolicy::default()).await;
    let firer = Firer::at("2027-05-01T08:00:00Z".parse().unwrap());
    let engine = engine(&aws, &firer);
    let rx = receiver().await;
    let id = active(&engine, birthday(&rx.url("/b"))).await;
    let gone = active(&engine, birthday(&rx.url("/gone"))).await;
    event(&engine, "e1", 1, "1990-05-01", "2027-05-01T07:00:00Z").await;
    engine.archive_scenario(1, &gone).await.unwrap();
    run_until(
        &engine,
        &aws,
        &firer,
        "2027-05-01T08:00:10Z".parse().unwrap(),
    )
    .await; // backfills
    let nine: Timestamp = "2027-05-01T09:00:00Z".parse().unwrap();
    let bucket = stored_in_minute(&aws, nine).await;
    assert_eq!(bucket.len(), 2, "one per scenario: {bucket:?}");

    // the first tick ever sweeps its own minute and the next
    firer.clock.set("2027-05-01T08:00:30Z".parse().unwrap());
    let swept = engine.sweep().await.unwrap();
    assert_eq!((swept.minutes, swept.occurrences), (2, 0));
    // ticks lost from 08:01 to 08:58: the one at 08:59:10 catches up from 08:02 to 09:00 (the
    // minute after its own), in pages of one occurrence
    firer.clock.set("2027-05-01T08:59:10Z".parse().unwrap());
    let swept = engine
        .sweep_within(std::time::Duration::from_secs(60), 1)
        .await
        .unwrap();
    assert_eq!((swept.minutes, swept.occurrences), (59, 2));
    // a repeated tick in the same minute sweeps nothing more
    assert_eq!(engine.sweep().await.unwrap().minutes, 0);
    // queued to arrive at 09:00:00 sharp, not when the tick of 09:00 happens to run
    let fires = fire_timers(&firer);
    assert!(!fires.is_empty());
    assert!(fires.iter().all(|t| t.fires == nine), "{fires:?}");
    // every fire message handled twice (an SQS redelivery), early and on time
    for t in &fires {
        handle(&engine, &aws, t).await; // early: queued again for its time
    }
    firer.clock.set(nine);
    for t in &fires {
        handle(&engine, &aws, t).await;
        handle(&engine, &aws, t).await;
    }
    run_until(
        &engine,
        &aws,
        &firer,
        "2027-05-01T09:10:00Z".parse().unwrap(),
    )
    .await;
    let got = fired(&rx);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(rx.received().iter().all(|r| r.path == "/b"));
    aws.settle().await;
    assert_eq!(engine.step_stats(1, &id, "hook").await.unwrap().passes, 1);
    // fired and archived occurrences are gone from the minute; next year's is there
    assert!(stored_in_minute(&aws, nine).await.is_empty());
    let next: Timestamp = "2028-05-01T09:00:00Z".parse().unwrap();
    assert_eq!(stored_in_minute(&aws, next).await.len(), 1);
}

/// An occurrence lost after its snapshot was stored (an intake that failed half-way) is put
/// back by the contact's next snapshot with the same date; one stored with a stale instant (a
/// time zone database update since) moves to its new time instead of firing or vanishing.
#[tokio::test(flavor = "multi_thread")]
async fn a_lost_occurrence_is_put_back_and_a_stale_instant_moves() {
    let aws = Aws::fresh(RetryPolicy::default()).await;
    let firer = Firer::at("2027-05-01T08:00:00Z".parse().unwrap());
    let engine = engine(&aws, &firer);
    let rx = receiver().await;
    active(&engine, birthday(&rx.url("/b"))).await;
    let nine: Timestamp = "2027-05-01T09:00:00Z".parse().unwrap();
    event(&engine, "e1", 1, "1990-05-01", "2027-05-01T07:00:00Z").await;
    let stored = stored_in_minute(&aws, nine).await;
    assert_eq!(stored.len(), 1);
    aws.store().cancel(&stored).await.unwrap(); // lost
    // another snapshot of the contact (its name changed), the same date
    engine
        .intake(
            1,
            json!({"id": "e2", "type": "contact_updated", "occurredAt": "2027-05-01T07:30:00Z",
                   "contact": {"id": 1, "email": "p1@example.org", "firstname": "Ann",
                               "birthDate": "1990-05-01"}}),
        )
        .await
        .unwrap();
    assert_eq!(stored_in_minute(&aws, nine).await, stored, "not put back");

    // the same occurrence stored for 08:30 (its instant before a time zone change), fired then
    let stale = hookline_core::ports::Scheduled {
        at: "2027-05-01T08:30:00Z".parse().unwrap(),
        ..stored[0].clone()
    };
    aws.store().cancel(&stored).await.unwrap();
    aws.store()
        .schedule(std::slice::from_ref(&stale))
        .await
        .unwrap();
    firer.clock.set(stale.at);
    engine.fire(&stale).await.unwrap();
    assert_eq!(rx.count(), 0, "fired at its stale instant");
    assert!(stored_in_minute(&aws, stale.at).await.is_empty());
    assert_eq!(
        stored_in_minute(&aws, nine).await,
        stored,
        "not moved to 09:00"
    );
}

/// `consent_expiring` on AWS: 30 days before 31 May, at 09:00 in Paris (07:00 UTC), queued to
/// arrive at 07:00:00; a consent expiring on 30 June does not fire.
#[tokio::test(flavor = "multi_thread")]
async fn consent_expiring_fires_at_its_time_in_its_zone() {
    let aws = Aws::fresh(RetryPolicy::default()).await;
    let firer = Firer::at("2027-05-01T06:58:30Z".parse().unwrap());
    let engine = engine(&aws, &firer);
    let rx = receiver().await;
    let def = json!({"name": "consent", "trigger": {"type": "consent_expiring", "daysBefore": 30,
           "time": "09:00", "timezone": "Europe/Paris"}, "start": "hook",
           "steps": [{"id": "hook", "type": "send_webhook", "url": rx.url("/c"),
                      "fields": ["email"], "next": null}]});
    active(&engine, def).await;
    for (contact, expires) in [(1, "2027-05-31T10:00:00Z"), (2, "2027-06-30T10:00:00Z")] {
        engine
            .intake(
                1,
                json!({"id": format!("c{contact}"), "type": "contact_updated",
                       "contact": {"id": contact, "email": format!("p{contact}@example.org"),
                                   "consent": {"expiration": expires}}}),
            )
            .await
            .unwrap();
    }
    let seven: Timestamp = "2027-05-01T07:00:00Z".parse().unwrap();
    let fires = fire_timers(&firer);
    assert_eq!(fires.len(), 1, "{fires:?}");
    assert_eq!(fires[0].fires, seven);
    run_until(
        &engine,
        &aws,
        &firer,
        "2027-05-01T07:05:00Z".parse().unwrap(),
    )
    .await;
    let got = fired(&rx);
    let emails: Vec<&str> = got.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(emails, vec!["p1@example.org"]);
}

/// The backfill message is sent before the activation is stored: one that finds its scenario
/// still a draft (the activation failed or crashed after sending it) schedules nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_backfill_for_a_scenario_never_activated_does_nothing() {
    let aws = Aws::fresh(RetryPolicy::default()).await;
    let firer = Firer::at("2027-05-01T08:00:00Z".parse().unwrap());
    let engine = engine(&aws, &firer);
    let rx = receiver().await;
    event(&engine, "e1", 1, "1990-05-01", "2027-05-01T07:00:00Z").await;
    let draft = engine
        .create_scenario(1, birthday(&rx.url("/b")))
        .await
        .unwrap()
        .id;
    let task = hookline_core::ports::Task::BackfillV1 {
        account: 1,
        scenario_id: draft.clone(),
        cursor: None,
    };
    let outcome = engine.handle(&task).await.unwrap();
    assert_eq!(outcome, hookline_core::app::Outcome::Done);
    let nine: Timestamp = "2027-05-01T09:00:00Z".parse().unwrap();
    assert!(stored_in_minute(&aws, nine).await.is_empty());
    // activated: its own backfill (due 10 s later) schedules the contact's birthday
    engine.activate_scenario(1, &draft).await.unwrap();
    run_until(
        &engine,
        &aws,
        &firer,
        "2027-05-01T08:00:30Z".parse().unwrap(),
    )
    .await;
    assert_eq!(stored_in_minute(&aws, nine).await.len(), 1);
}
