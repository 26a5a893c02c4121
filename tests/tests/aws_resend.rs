//! Resends on AWS against a slow receiver: webhook-deliver's time is bounded (Lambda stops it
//! at its timeout and SQS hands the message over again), so a resend task must fit in it,
//! whatever the receiver's pace. Played here with a short timeout and a receiver that takes
//! two seconds per request, so that it runs in seconds (the timeout leaves 3 s for the store
//! calls of a batch of 10 on a busy machine, where moto answers one call at a time).

#[path = "support/functions.rs"]
mod functions;
mod support;

use std::collections::HashMap;
use std::time::Duration;

use functions::*;
use hookline_aws::aws_lambda_events::event::sqs::SqsEvent;
use hookline_aws::lambda::handle_batch;
use hookline_core::domain::retry::RetryPolicy;
use hookline_local::receiver::{Receiver, ReceiverOptions};
use serde_json::json;
use support::{Aws, sqs_event};

/// webhook-deliver's timeout, as played here (the template's is 60 s, with 15 s attempts).
const TIMEOUT: Duration = Duration::from_millis(5_000);
/// SQS moves a message received this many times to the dead-letter queue (template).
const MAX_RECEIVES: usize = 5;

#[tokio::test(flavor = "multi_thread")]
async fn a_resend_of_many_deliveries_to_a_slow_receiver_resends_each_once() {
    const N: usize = 40;
    // a one-second window: a refused first attempt fails its delivery at once
    let aws = Aws::fresh(RetryPolicy::parse("1s", "1s").unwrap()).await;
    let (engine, queue) = hookline_aws::lambda::engine(&aws.config, &aws.settings).unwrap();
    let rx = Receiver::start(
        "127.0.0.1:0",
        ReceiverOptions {
            status: 500,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    engine.register_key(KEY, 1).await.unwrap();
    let id = activate(&engine, &webhook_only(&rx.url("/hooks"))).await;
    for i in 0..N {
        let event = json!({"id": format!("e{i}"), "type": "form_subscribed",
            "contact": {"id": i + 1, "email": "a@example.org"}, "context": {"formId": 12}});
        engine.intake(1, event).await.unwrap();
    }
    for _ in 0..40 {
        pump(&aws, &engine, queue.as_ref()).await;
        let failed = stats(&aws, &engine, &id, "only").await["failed"].clone();
        if failed == N {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(stats(&aws, &engine, &id, "only").await["failed"], N);

    // the receiver now takes two seconds per request and still refuses: every resend stays
    // failed
    rx.set_delay(Duration::from_secs(2));
    let before = rx.count();
    let resent = engine
        .resend_failed(1, &id, "only", json!({"since": "2020-01-01T00:00:00Z"}))
        .await
        .unwrap();
    assert_eq!(resent.queued, N);

    // webhook-deliver as Lambda runs it: a batch stopped at the timeout is handed over again
    // (its messages visible again), a message received MAX_RECEIVES times is dead-lettered
    let q = &aws.settings.deliver_queue;
    let sqs = aws_sdk_sqs::Client::new(&aws.config);
    let mut receives: HashMap<String, usize> = HashMap::new();
    let mut dead = 0;
    for _ in 0..40 {
        let messages = aws.receive(q).await;
        if messages.is_empty() {
            break;
        }
        let event: SqsEvent = serde_json::from_value(sqs_event(&q.arn, &messages)).unwrap();
        let answer = tokio::time::timeout(TIMEOUT, handle_batch(&engine, queue.as_ref(), event))
            .await
            .ok();
        for (receipt, message, _) in &messages {
            let n = receives.entry(message.clone()).or_default();
            *n += 1;
            let failed = answer.as_ref().is_none_or(|a| {
                a.batch_item_failures
                    .iter()
                    .any(|f| &f.item_identifier == message)
            });
            if failed && *n < MAX_RECEIVES {
                sqs.change_message_visibility()
                    .queue_url(&q.url)
                    .receipt_handle(receipt)
                    .visibility_timeout(0)
                    .send()
                    .await
                    .unwrap();
            } else {
                dead += usize::from(failed);
                aws.delete(q, receipt).await;
            }
        }
    }
    assert_eq!(dead, 0, "messages left to the dead-letter queue");
    let made = rx.count() - before;
    let mut by_delivery: HashMap<String, usize> = HashMap::new();
    for r in rx.received().iter().skip(before) {
        *by_delivery
            .entry(r.json()["id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(
        (made, by_delivery.len()),
        (N, N),
        "one resend of each failed delivery: {by_delivery:?}"
    );
    assert!(by_delivery.values().all(|n| *n == 1), "{by_delivery:?}");
}
