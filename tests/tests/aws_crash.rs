//! Crashes on the Lambda functions' path, over DynamoDB, SQS and Scheduler on moto: a crash
//! after every write request in turn, and scenario-advance handed the same move again after a
//! crash before it recorded it. Each run ends with one webhook per step and exact statistics.

#[path = "support/functions.rs"]
mod functions;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use functions::*;
use hookline_core::app::Outcome;
use hookline_core::domain::retry::RetryPolicy;
use hookline_core::ports::*;
use hookline_local::receiver::{Receiver, ReceiverOptions};
use serde_json::json;
use support::Aws;

/// scenario-advance replayed after a crash between queueing a delivery's first attempt and
/// moving the enrollment (SQS hands the move's message over again): the walk made again names
/// the same delivery, so the receiver gets one webhook, counted once — reached through a wait
/// (the walk's time is the wait's end) and straight from a hand-back (the first attempt's
/// start, carried by the message).
#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_advance_makes_the_same_delivery() {
    let (aws, engine, queue, rx, _) = started(0).await;
    let waited = activate(&engine, &webhook_wait_webhook(&rx.url("/a"), &rx.url("/b"))).await;
    let direct = activate(&engine, &webhook_webhook(&rx.url("/c"), &rx.url("/d"))).await;
    engine.intake(1, event("evt-replay")).await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&aws.config);
    let mut replayed = 0;
    for _ in 0..60 {
        // each advance into a second webhook: its first run crashes right after queueing the
        // first attempt (before the move), then SQS hands it over again
        for (receipt, _, body) in aws.receive(&aws.settings.advance_queue).await {
            let task: Task = serde_json::from_str(&body).unwrap();
            if matches!(&task, Task::AdvanceV1 { step_id: Some(s), .. } if s == "second") {
                let crash = CrashAfter {
                    writes: Arc::new(AtomicUsize::new(0)),
                    n: 1,
                };
                let (crashing, _) = crash.engine(&aws);
                assert!(crashing.handle(&task).await.is_err(), "no crash injected");
                replayed += 1;
            }
            match engine.handle(&task).await.unwrap() {
                Outcome::Done => {}
                Outcome::RetryAt(at) => queue.enqueue(&task, at).await.unwrap(),
            }
            sqs.delete_message()
                .queue_url(&aws.settings.advance_queue.url)
                .receipt_handle(receipt)
                .send()
                .await
                .unwrap();
        }
        let deliver = &aws.settings.deliver_queue;
        pump_queue(&aws, &engine, queue.as_ref(), deliver).await;
        let got = rx.received();
        if ["/b", "/d"]
            .iter()
            .all(|p| got.iter().any(|r| r.path == *p))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(replayed, 2, "the advances into the second webhooks");
    for _ in 0..5 {
        // any copy left is handled
        pump_queue(&aws, &engine, queue.as_ref(), &aws.settings.deliver_queue).await;
    }
    for (scenario, path) in [(&waited, "/b"), (&direct, "/d")] {
        let ids: Vec<String> = rx
            .received()
            .iter()
            .filter(|r| r.path == path)
            .map(|r| r.json()["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids.len(), 1, "the second webhook to {path}: {ids:?}");
        let second = stats(&aws, &engine, scenario, "second").await;
        assert_eq!(
            (second["passes"].clone(), second["accepted"].clone()),
            (json!(1), json!(1))
        );
    }
}

/// A crash after each write request of the flow in turn, until the flow has fewer writes than
/// that (the handler fails, SQS redelivers, the platform re-sends the event): every run ends
/// with one delivery and exact statistics, in a scenario that hands the contact back after its
/// webhook and in one whose webhook is the last step (its enrollment ends at intake).
#[tokio::test(flavor = "multi_thread")]
async fn a_crash_after_any_write_ends_with_one_delivery_and_exact_stats() {
    // the event alone, then in a batch (whose sends are held and flushed together)
    for batched in [false, true] {
        crash_after_each_write(batched).await;
    }
}

async fn crash_after_each_write(batched: bool) {
    let mut crash_points = 0;
    for n in 1..=60 {
        let aws = Aws::fresh(RetryPolicy::parse("60s", "1s").unwrap()).await;
        let (plain, _) = hookline_aws::lambda::engine(&aws.config, &aws.settings).unwrap();
        let rx = Receiver::start("127.0.0.1:0", ReceiverOptions::default())
            .await
            .unwrap();
        let id = setup(&plain, &rx.url("/hooks")).await;
        let last = activate(&plain, &webhook_only(&rx.url("/last"))).await;
        let twice = activate(&plain, &webhook_wait_webhook(&rx.url("/a"), &rx.url("/b"))).await;
        let crash = CrashAfter {
            writes: Arc::new(AtomicUsize::new(0)),
            n,
        };
        let (engine, queue) = crash.engine(&aws);
        // stats-query's stream handler over the same crashing client
        let counters =
            hookline_aws::DynamoStore::new(engine_client(&crash, &aws), &aws.settings.table);
        // the platform re-sends an event until it is accepted
        let mut sent = false;
        for _ in 0..3 {
            let accepted = if batched {
                let batch = json!({"events": [event("evt-1")]});
                engine.intake_batch(1, batch).await.is_ok()
            } else {
                engine.intake(1, event("evt-1")).await.is_ok()
            };
            if accepted {
                sent = true;
                break;
            }
        }
        assert!(sent, "crash after write {n}: the event was never accepted");
        for _ in 0..60 {
            pump(&aws, &engine, queue.as_ref()).await;
            aws.settle_with(&counters).await;
            if stats(&aws, &plain, &id, "pause").await["passes"] == 1
                && stats(&aws, &plain, &id, "hook").await["accepted"] == 1
                && stats(&aws, &plain, &last, "only").await["accepted"] == 1
                && stats(&aws, &plain, &twice, "second").await["accepted"] == 1
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let steps = [
            (&id, "hook"),
            (&last, "only"),
            (&twice, "first"),
            (&twice, "second"),
        ];
        for (scenario, step) in steps {
            let hook = stats(&aws, &plain, scenario, step).await;
            assert_eq!(
                (
                    hook["passes"].as_u64(),
                    hook["uniqueContacts"].as_u64(),
                    hook["accepted"].as_u64(),
                    hook["pending"].as_u64(),
                    hook["failed"].as_u64()
                ),
                (Some(1), Some(1), Some(1), Some(0), Some(0)),
                "crash after write {n}: {hook}"
            );
        }
        assert_eq!(
            stats(&aws, &plain, &id, "pause").await["passes"],
            1,
            "crash after write {n}"
        );
        for path in ["/hooks", "/last", "/a", "/b"] {
            let ids: std::collections::BTreeSet<String> = rx
                .received()
                .iter()
                .filter(|r| r.path == path)
                .map(|r| r.json()["id"].as_str().unwrap().to_string())
                .collect();
            // sent once, or again after the crash: always as the same webhook (one `id`)
            assert_eq!(
                ids.len(),
                1,
                "crash after write {n}: the webhooks to {path}: {ids:?}"
            );
        }
        for (scenario, step) in steps {
            let deliveries = DeliveryStore::list(
                &aws.store(),
                &DeliveryFilter {
                    account: 1,
                    scenario_id: scenario,
                    step_id: step,
                    status: None,
                    since: None,
                    cursor: None,
                    limit: 10,
                },
            )
            .await
            .unwrap();
            assert_eq!(deliveries.items.len(), 1, "crash after write {n}");
        }
        if crash.writes.load(Ordering::SeqCst) < n {
            break; // the whole flow made fewer writes: every crash point was tried
        }
        crash_points += 1;
    }
    println!("crashed after each of {crash_points} writes in turn (batched: {batched})");
    assert!(
        (15..60).contains(&crash_points),
        "{crash_points} crash points: the flow's writes were not all reached, or never ended"
    );
}
