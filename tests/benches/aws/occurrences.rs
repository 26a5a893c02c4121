//! The AWS bench's time-based triggers: requests and cost per occurrence, and of an idle month
//! of ticks (a module of `aws.rs`).

use std::sync::{Arc, Mutex};

use hookline_core::domain::retry::RetryPolicy;
use hookline_local::receiver::{Receiver, ReceiverOptions};
use serde_json::json;

use crate::support::Aws;
use crate::*;

/// A clock the bench sets.
#[derive(Debug)]
struct SetClock(Mutex<jiff::Timestamp>);

impl hookline_core::ports::Clock for SetClock {
    fn now(&self) -> jiff::Timestamp {
        *self.0.lock().unwrap()
    }
}

fn sum_of(t: &Tally, prefix: &str) -> u64 {
    t.requests
        .iter()
        .filter(|(k, _)| k.to_ascii_lowercase().starts_with(prefix))
        .map(|(_, v)| v)
        .sum()
}

/// Time-based triggers: the requests of scheduling an occurrence (with the event that brings
/// the date), of the tick that sweeps its minute, and of firing it (enrollment, webhook,
/// next year's occurrence); the cost per million occurrences, and of an idle month of ticks.
pub async fn cost_per_occurrence() {
    let n = 30;
    let aws = Aws::fresh(RetryPolicy::default()).await;
    let counter = Counter::default();
    let clock = Arc::new(SetClock(Mutex::new(
        "2027-05-01T08:00:00Z".parse().unwrap(),
    )));
    let (engine, queue) = hookline_aws::lambda::engine_with_clock(
        clients(&aws, &counter),
        &aws.settings,
        clock.clone(),
    )
    .unwrap();
    let rx = Receiver::start("127.0.0.1:0", ReceiverOptions::default())
        .await
        .unwrap();
    let def = json!({"name": "birthday", "trigger": {"type": "date_reached", "field": "birthDate",
        "yearly": true, "time": "09:00"}, "start": "hook",
        "steps": [{"id": "hook", "type": "send_webhook", "url": rx.url("/h"), "fields": ["email", "firstname", "lastname"],
                   "additional": {"pad": "x".repeat(600)}, "next": null}]});
    let id = engine.create_scenario(1, def).await.unwrap().id;
    engine.activate_scenario(1, &id).await.unwrap();
    pump(&aws, &engine, queue.as_ref(), None).await; // the backfill (no contacts yet)
    let take = |label: &str| {
        let mut t = counter.0.lock().unwrap();
        let taken = std::mem::take(&mut *t);
        println!("  {label}:");
        for (op, count) in &taken.requests {
            println!("    {op:<38} {:>6.2}", *count as f64 / n as f64);
        }
        taken
    };

    println!(
        "\n== time-based triggers: AWS requests per occurrence ({n} birthdays at 09:00, moto)"
    );
    *counter.0.lock().unwrap() = Tally::default();
    for i in 0..n {
        engine
            .intake(
                1,
                json!({"id": format!("t{i}"), "type": "contact_updated",
                "contact": {"id": i + 1, "email": format!("c{i}@example.org"), "firstname": "Bench",
                            "lastname": "Mark", "birthDate": "1990-05-01"}}),
            )
            .await
            .unwrap();
    }
    let scheduling =
        take("an event bringing the date (snapshot put, the occurrence under its minute)");
    *clock.0.lock().unwrap() = "2027-05-01T09:00:05Z".parse().unwrap();
    let swept = engine.sweep().await.unwrap();
    assert_eq!(swept.occurrences, n as usize);
    let tick = take("the tick sweeping 09:00 (per occurrence)");
    let mut batches = 0;
    for _ in 0..200 {
        let (m, b, _) = pump(&aws, &engine, queue.as_ref(), None).await;
        batches += b;
        if m == 0 && rx.count() >= n as usize {
            break;
        }
    }
    assert_eq!(rx.count(), n as usize);
    // stats-query's stream handler keeps the counters: its writes are the webhooks' too
    aws.settle_with(&counting_store(&aws, &counter)).await;
    let firing = take("firing: enrollment, webhook, next year's occurrence, counters");
    let esm = 2.0 * batches as f64;
    let per = |x: f64| x / n as f64;
    let all = [&scheduling, &tick, &firing];
    let wru: f64 = all.iter().map(|t| t.wru).sum();
    let rru: f64 = all.iter().map(|t| t.rru).sum();
    let sqs: u64 = all.iter().map(|t| sum_of(t, "sqs")).sum();
    let schedules: u64 = all.iter().map(|t| sum_of(t, "scheduler")).sum();
    let requests: u64 = all.iter().map(|t| t.requests.values().sum::<u64>()).sum();
    println!(
        "  {:.1} AWS requests per occurrence in all (+{:.2} event source mapping), {:.1} WRU, {:.1} RRU",
        per(requests as f64),
        per(esm),
        per(wru),
        per(rru)
    );
    // the event's own intake is the platform's (it arrives anyway); the rest is the occurrence's
    let invocations = batches as f64 + 1.0; // consumer batches + the tick
    let gb_s = batches as f64 * 0.128 * 0.080 + 0.128 * 0.050;
    let cost = [
        ("Lambda requests", per(invocations) * LAMBDA_REQ_PER_M),
        (
            "Lambda duration (assumed 80 ms per batch, 128 MB)",
            per(gb_s) * LAMBDA_GB_S * 1e6,
        ),
        (
            "SQS (sends + event source mapping)",
            per(sqs as f64 + esm) * SQS_PER_M,
        ),
        ("DynamoDB on-demand writes", per(wru) * DDB_WRU_PER_M),
        ("DynamoDB on-demand reads", per(rru) * DDB_RRU_PER_M),
        (
            "EventBridge Scheduler",
            per(schedules as f64) * SCHEDULER_PER_M,
        ),
    ];
    println!("\n== estimated cost per million occurrences fired (each with its first-try webhook)");
    print_costs(&cost, 2);

    // an idle minute: the tick finds nothing
    *counter.0.lock().unwrap() = Tally::default();
    *clock.0.lock().unwrap() = "2027-05-01T09:01:05Z".parse().unwrap();
    let swept = engine.sweep().await.unwrap();
    assert_eq!((swept.minutes, swept.occurrences), (1, 0));
    let idle = std::mem::take(&mut *counter.0.lock().unwrap());
    let ticks = 30.0 * 24.0 * 60.0;
    let month = [
        (
            "EventBridge Scheduler invocations",
            ticks / 1e6 * SCHEDULER_PER_M,
        ),
        ("Lambda requests", ticks / 1e6 * LAMBDA_REQ_PER_M),
        (
            "Lambda duration (assumed 50 ms, 128 MB)",
            ticks * 0.050 * 0.128 * LAMBDA_GB_S,
        ),
        ("DynamoDB writes", ticks * idle.wru / 1e6 * DDB_WRU_PER_M),
        ("DynamoDB reads", ticks * idle.rru / 1e6 * DDB_RRU_PER_M),
    ];
    println!(
        "\n== an idle month of ticks (43,200; each {:?}, {} WRU, {} RRU)",
        idle.requests, idle.wru, idle.rru
    );
    print_costs(&month, 3);
}
