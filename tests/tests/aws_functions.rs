//! The Lambda handlers with real event JSON (API Gateway HTTP API v2 requests, SQS events),
//! over DynamoDB, SQS and Scheduler on moto, delivering to a real receiver on 127.0.0.1.
//! A small loop plays Lambda's event source mapping: receive from a queue, invoke the
//! handler, delete what it did not report as failed.

#[path = "support/functions.rs"]
mod functions;
mod support;

use std::time::Duration;

use functions::*;
use hookline_aws::aws_lambda_events::event::sqs::SqsEvent;
use hookline_aws::lambda::handle_batch;
use hookline_core::domain::retry::RetryPolicy;
use hookline_core::ports::*;
use hookline_local::receiver::{Receiver, ReceiverOptions};
use serde_json::{Value, json};
use support::{Aws, http_event, sqs_event};

#[tokio::test(flavor = "multi_thread")]
async fn an_event_walks_through_every_function_to_a_real_receiver() {
    let (aws, engine, queue, rx, id) = started(1).await;

    let intake = hookline_aws::http_api::intake_routes(engine.clone());
    let (status, answer) = call(
        &intake,
        http_event("POST", "/v1/events", Some(KEY), Some(&event("evt-1"))),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["enrollments"][0]["scenarioId"], json!(id));
    let (status, _) = call(
        &intake,
        http_event("POST", "/v1/events", None, Some(&event("evt-2"))),
    )
    .await;
    assert_eq!(status, 401);

    for _ in 0..60 {
        pump(&aws, &engine, queue.as_ref()).await;
        if stats(&aws, &engine, &id, "pause").await["passes"] == 1 && rx.count() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let got = rx.received();
    assert_eq!(
        got.len(),
        2,
        "first attempt refused (500), the retry accepted"
    );
    assert_eq!(got[0].body, got[1].body, "the retry changed the payload");
    let body = got[0].json();
    assert_eq!(
        body["data"],
        json!({"type": "member", "id": 54321, "email": "john.doe@example.org", "firstname": "John", "full_name": "John Doe"})
    );
    assert_eq!(body["scenario"], json!({"id": id, "stepId": "hook"}));
    assert_eq!(got[0].header("x-api-key"), Some("abc123"));
    let hook = stats(&aws, &engine, &id, "hook").await;
    assert_eq!(
        hook,
        json!({"stepId": "hook", "type": "send_webhook", "passes": 1, "uniqueContacts": 1, "accepted": 1, "pending": 0, "failed": 0})
    );
    // the deliveries list through stats-query
    let stats_api = hookline_aws::http_api::stats_routes(engine.clone());
    let (_, list) = call(
        &stats_api,
        http_event(
            "GET",
            &format!("/v1/scenarios/{id}/steps/hook/deliveries?status=accepted"),
            Some(KEY),
            None,
        ),
    )
    .await;
    let attempts = list["items"][0]["attempts"].as_array().unwrap();
    assert_eq!(
        attempts
            .iter()
            .map(|a| a["status"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![500, 200]
    );
}

/// stats-query's own reading brings the counters up to date from the table's stream: a
/// webhook is counted as soon as its first attempt is stored, before (or without) the event
/// source mapping handing the stream over; when the mapping does hand it over, nothing counts
/// twice.
#[tokio::test(flavor = "multi_thread")]
async fn stats_query_counts_every_write_made_before_the_reading() {
    let (aws, engine, queue, rx, id) = started(0).await;
    let stats_engine = hookline_aws::lambda::counters_up_to_date(
        engine.clone(),
        aws.store(),
        aws_sdk_dynamodbstreams::Client::new(&aws.config),
    );
    let read = || async {
        let api = hookline_aws::http_api::stats_routes(stats_engine.clone());
        let path = format!("/v1/scenarios/{id}/steps/hook/stats");
        call(&api, http_event("GET", &path, Some(KEY), None))
            .await
            .1
    };
    engine.intake(1, event("evt-1")).await.unwrap();
    // the delivery rides in its first attempt's message: counted once that attempt is stored
    assert_eq!(read().await["passes"], json!(0));
    while rx.count() < 1 {
        pump(&aws, &engine, queue.as_ref()).await;
    }
    // nothing handed over by the mapping yet: the reading itself catches up
    let expected = json!({"stepId": "hook", "type": "send_webhook", "passes": 1,
        "uniqueContacts": 1, "accepted": 1, "pending": 0, "failed": 0});
    assert_eq!(read().await, expected);
    aws.settle().await; // the mapping hands the same records over
    assert_eq!(read().await, expected);
    assert_eq!(stats(&aws, &engine, &id, "hook").await, expected);
}

/// A first attempt's message carries its delivery: one past SQS's default 256 KiB a message
/// (a 240 KB payload of quotes, the name twice as `firstname` and in `full_name`, each quote
/// escaped twice in the message: 480 KB) is queued and sent; refused, it is stored whole for
/// its retry (the deliver queue takes 1 MiB; the tests' queues take what the template says).
#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_past_256_kib_is_queued_sent_and_stored_whole() {
    let (aws, engine, queue, rx, id) = started(1).await;
    let long_name = "\"".repeat(60 * 1024);
    let mut big = event("evt-big");
    big["contact"]["firstname"] = json!(long_name);
    engine.intake(1, big).await.unwrap();
    for _ in 0..40 {
        pump(&aws, &engine, queue.as_ref()).await;
        if rx.count() >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = rx.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].json()["data"]["firstname"], json!(long_name));
    let hook = stats(&aws, &engine, &id, "hook").await;
    assert_eq!(
        (hook["passes"].clone(), hook["pending"].clone()),
        (json!(1), json!(1))
    );
    let listed = DeliveryStore::list(
        &aws.store(),
        &DeliveryFilter {
            account: 1,
            scenario_id: &id,
            step_id: "hook",
            status: None,
            since: None,
            cursor: None,
            limit: 1,
        },
    )
    .await
    .unwrap();
    let stored = DeliveryStore::get(&aws.store(), &listed.items[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.payload, got[0].body, "the stored request");
    assert_eq!(stored.attempts.len(), 1);
}

/// A payload past 256 KiB once rendered (SPEC §5; ten keys of 512 `{{note}}` with an 8 KB
/// note: 41 MB): its delivery fails at once with the size it would have had, counted as a
/// pass and as failed; nothing is sent, no message is too large for its queue, and the contact
/// moves on.
#[tokio::test(flavor = "multi_thread")]
async fn a_payload_past_256_kib_fails_at_once_and_is_never_sent() {
    let (aws, engine, queue, rx, _) = started(0).await;
    let additional: serde_json::Map<String, Value> = (0..10)
        .map(|i| (format!("k{i}"), json!("{{note}}".repeat(512))))
        .collect();
    let id = activate(
        &engine,
        &json!({"name": "too much", "trigger": {"type": "group_added", "groupId": 7},
                "start": "hook",
                "steps": [{"id": "hook", "type": "send_webhook", "url": rx.url("/big"),
                           "fields": ["email"], "additional": additional, "next": "pause"},
                          {"id": "pause", "type": "wait", "duration": "PT1H", "next": null}]}),
    )
    .await;
    let big = json!({"id": "evt-big", "type": "group_added", "context": {"groupId": 7},
                     "contact": {"id": 7, "email": "big@example.org", "note": "n".repeat(8_000)}});
    engine.intake(1, big).await.unwrap();
    let mut hook = Value::Null;
    for _ in 0..40 {
        pump(&aws, &engine, queue.as_ref()).await;
        hook = stats(&aws, &engine, &id, "hook").await;
        if hook["failed"] == 1 && stats(&aws, &engine, &id, "pause").await["passes"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        hook,
        json!({"stepId": "hook", "type": "send_webhook", "passes": 1, "uniqueContacts": 1,
               "accepted": 0, "pending": 0, "failed": 1})
    );
    assert_eq!(stats(&aws, &engine, &id, "pause").await["passes"], 1);
    assert_eq!(rx.count(), 0, "the oversized payload was sent");
    let listed = DeliveryStore::list(
        &aws.store(),
        &DeliveryFilter {
            account: 1,
            scenario_id: &id,
            step_id: "hook",
            status: None,
            since: None,
            cursor: None,
            limit: 1,
        },
    )
    .await
    .unwrap();
    let stored = &listed.items[0];
    assert_eq!(
        stored.status,
        hookline_core::domain::delivery::DeliveryStatus::Failed
    );
    let error = stored.attempts[0].error.clone().unwrap_or_default();
    let size: u64 = error
        .strip_prefix("payload too large: ")
        .and_then(|e| e.strip_suffix(" bytes (limit 262144)"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{error}"));
    assert!(size > 40_000_000, "{size}");
    assert_eq!(stored.attempts[0].status, None);
    assert_eq!(stored.next_attempt_at, None);
}

/// An event of a batch is held to the limit of one sent alone (256 KiB): a 300 KB one (past
/// DynamoDB's 400 KB item once stored with its memo, it used to fail the batch on every
/// resend) gets its own error item; the other goes through, and the batch answers 200 again
/// when sent again.
#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_event_in_a_batch_gets_its_own_error_item() {
    let (aws, engine, queue, rx, id) = started(0).await;
    let intake = hookline_aws::http_api::intake_routes(engine.clone());
    let mut large = event("evt-large");
    large["contact"]["id"] = json!(777);
    large["contact"]["note"] = json!("n".repeat(300_000));
    let batch = json!({"events": [event("evt-small"), large]});
    let mut first = Value::Null;
    for round in 0..2 {
        let (status, answer) = call(
            &intake,
            http_event("POST", "/v1/events/batch", Some(KEY), Some(&batch)),
        )
        .await;
        assert_eq!(status, 200, "round {round}: {answer}");
        let items = answer["items"].as_array().unwrap();
        assert_eq!(items[0]["enrollments"][0]["scenarioId"], json!(id));
        assert_eq!(items[1]["eventId"], "evt-large");
        assert_eq!(items[1]["error"]["code"], "event_too_large", "{answer}");
        if round == 0 {
            first = answer;
        } else {
            assert_eq!(answer, first);
        }
    }
    assert_eq!(
        ContactStore::get(&aws.store(), 1, 777).await.unwrap(),
        None,
        "the oversized event's snapshot was stored"
    );
    for _ in 0..40 {
        pump(&aws, &engine, queue.as_ref()).await;
        if rx.count() >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rx.count(), 1);
    assert_eq!(rx.received()[0].json()["data"]["id"], 54321);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_message_handled_twice_changes_nothing() {
    let (aws, engine, queue, rx, id) = started(0).await;
    engine.intake(1, event("evt-1")).await.unwrap();
    for _ in 0..40 {
        // every message is handled twice before it is deleted (an SQS redelivery)
        for q in [&aws.settings.advance_queue, &aws.settings.deliver_queue] {
            let messages = aws.receive(q).await;
            for _ in 0..2 {
                let event: SqsEvent = serde_json::from_value(sqs_event(&q.arn, &messages)).unwrap();
                assert!(
                    handle_batch(&engine, queue.as_ref(), event)
                        .await
                        .batch_item_failures
                        .is_empty()
                );
            }
            for (receipt, _, _) in &messages {
                aws.delete(q, receipt).await;
            }
        }
        if stats(&aws, &engine, &id, "pause").await["passes"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        rx.count(),
        1,
        "a redelivered message sent the webhook again"
    );
    let hook = stats(&aws, &engine, &id, "hook").await;
    assert_eq!(
        (
            hook["passes"].as_u64(),
            hook["accepted"].as_u64(),
            hook["pending"].as_u64()
        ),
        (Some(1), Some(1), Some(0))
    );
    assert_eq!(stats(&aws, &engine, &id, "pause").await["passes"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_bad_message_never_fails_the_batch() {
    let (aws, engine, queue, rx, id) = started(0).await;
    engine.intake(1, event("evt-1")).await.unwrap();
    // intake walked to the webhook step: its delivery is queued directly
    assert!(aws.receive(&aws.settings.advance_queue).await.is_empty());
    let mut messages = aws.receive(&aws.settings.deliver_queue).await;
    assert_eq!(messages.len(), 1);
    messages.push(("r-bad".into(), "m-bad".into(), "not a task".into()));
    messages.push((
        "r-gone".into(),
        "m-gone".into(),
        r#"{"type":"deliver.v1","delivery_id":"dlv_unknown"}"#.into(),
    ));
    let event: SqsEvent =
        serde_json::from_value(sqs_event(&aws.settings.deliver_queue.arn, &messages)).unwrap();
    let response = handle_batch(&engine, queue.as_ref(), event).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "messages that can never succeed are acknowledged"
    );
    assert_eq!(
        stats(&aws, &engine, &id, "hook").await["accepted"],
        1,
        "the good message was not processed"
    );
    assert_eq!(rx.count(), 1);
}

/// The intake queue (SPEC §3): `{"account", "event"}` messages enroll exactly as `POST
/// /v1/events` does; a message that is not one, or whose event is invalid, is reported failed
/// (SQS moves it to the dead-letter queue after its last receive) without holding up the others.
#[tokio::test(flavor = "multi_thread")]
async fn the_intake_queue_enrolls_and_sets_bad_messages_aside() {
    let (aws, engine, queue, rx, id) = started(0).await;
    let mut bad_event = event("evt-q3");
    bad_event["contact"]["email"] = json!("not an address");
    let bodies = [
        (
            "m1",
            json!({"account": 1, "event": event("evt-q1")}).to_string(),
        ),
        ("m2", "not json".to_string()),
        ("m3", json!({"account": 1, "event": bad_event}).to_string()),
        ("m4", json!({"event": event("evt-q4")}).to_string()),
        (
            "m5",
            json!({"account": 1, "event": event("evt-q1")}).to_string(),
        ), // a repeat
    ];
    let messages: Vec<(String, String, String)> = bodies
        .iter()
        .map(|(id, body)| (format!("r-{id}"), id.to_string(), body.clone()))
        .collect();
    let batch = sqs_event("arn:aws:sqs:us-east-1:123456789012:intake", &messages);
    assert!(hookline_aws::lambda::is_sqs(&batch));
    assert!(!hookline_aws::lambda::is_sqs(
        &serde_json::from_str::<Value>(&http_event("POST", "/v1/events", Some(KEY), None)).unwrap()
    ));
    let response =
        hookline_aws::lambda::handle_intake_batch(&engine, serde_json::from_value(batch).unwrap())
            .await;
    let mut failed: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    failed.sort();
    assert_eq!(failed, vec!["m2", "m3", "m4"]);
    for _ in 0..40 {
        pump(&aws, &engine, queue.as_ref()).await;
        if stats(&aws, &engine, &id, "hook").await["accepted"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hook = stats(&aws, &engine, &id, "hook").await;
    assert_eq!(
        (hook["passes"].clone(), hook["accepted"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(rx.count(), 1, "the repeated event was delivered twice");
}

/// Signed webhooks and resends on the functions: webhook-deliver signs each attempt with the
/// step's secret (scenario-api shows it; the reference libraries verify it), and a delivery that
/// failed is resent through scenario-api and the deliver queue, moving failed → accepted.
#[tokio::test(flavor = "multi_thread")]
async fn attempts_are_signed_and_failed_deliveries_are_resent() {
    let aws = Aws::fresh(RetryPolicy::parse("2s", "1s").unwrap()).await;
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
    let id = setup(&engine, &rx.url("/hooks")).await;
    let api = hookline_aws::http_api::scenario_routes(engine.clone());
    let (status, secret) = call(
        &api,
        http_event(
            "GET",
            &format!("/v1/scenarios/{id}/steps/hook/secret"),
            Some(KEY),
            None,
        ),
    )
    .await;
    assert_eq!(status, 200, "{secret}");
    let secret = secret["secret"].as_str().unwrap().to_string();
    engine.intake(1, event("evt-s1")).await.unwrap();
    for _ in 0..80 {
        pump(&aws, &engine, queue.as_ref()).await;
        if stats(&aws, &engine, &id, "hook").await["failed"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(stats(&aws, &engine, &id, "hook").await["failed"], 1);
    let got = rx.received();
    assert!(got.len() >= 2, "the first attempt and a retry");
    for r in &got {
        let header = |n: &str| r.header(n).map(str::to_string);
        hookline_core::domain::signing::verify(
            &secret,
            header,
            r.body.as_bytes(),
            jiff::Timestamp::now(),
        )
        .unwrap();
        let v = hookline_local::receiver::reference_verdicts(&secret, r, &r.body, 0);
        assert_eq!(v, json!({"standardwebhooks": "ok", "svix": "ok"}));
    }
    let v = hookline_local::receiver::reference_verdicts(
        &secret,
        &got[0],
        &got[0].body.replace("John", "Jane"),
        0,
    );
    assert!(
        v["standardwebhooks"]
            .as_str()
            .unwrap()
            .starts_with("refused"),
        "{v}"
    );
    assert!(v["svix"].as_str().unwrap().starts_with("refused"), "{v}");

    // resend every failed delivery since a time: queued, attempted by webhook-deliver
    rx.set_status(200);
    let (status, body) = call(
        &api,
        http_event(
            "POST",
            &format!("/v1/scenarios/{id}/steps/hook/resend-failed"),
            Some(KEY),
            Some(&json!({"since": "2020-01-01T00:00:00Z"})),
        ),
    )
    .await;
    assert_eq!((status, body), (202, json!({"queued": 1})));
    for _ in 0..40 {
        pump(&aws, &engine, queue.as_ref()).await;
        if stats(&aws, &engine, &id, "hook").await["accepted"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        stats(&aws, &engine, &id, "hook").await,
        json!({"stepId": "hook", "type": "send_webhook", "passes": 1, "uniqueContacts": 1, "accepted": 1, "pending": 0, "failed": 0})
    );
    let last = rx.received().pop().unwrap();
    assert_eq!(last.body, got[0].body, "a resend sends the same bytes");
    assert_eq!(last.answered, 200);
    let delivery = engine
        .step_deliveries(1, &id, "hook", None, None, None)
        .await
        .unwrap()
        .items[0]
        .id
        .clone();
    let (status, _) = call(
        &api,
        http_event(
            "POST",
            &format!("/v1/scenarios/{id}/steps/hook/deliveries/{delivery}/resend"),
            Some(KEY),
            None,
        ),
    )
    .await;
    assert_eq!(status, 409, "an accepted delivery is not resent");
}

/// webhook-deliver signs first attempts with the scenario it read last when the message names
/// that version or an older one (no read per webhook); a rotation makes a newer version, so the
/// next first attempt reads it again and carries both signatures at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_secret_signs_the_next_first_attempt() {
    let (aws, engine, queue, rx, id) = started(0).await;
    let api = hookline_aws::http_api::scenario_routes(engine.clone());
    let secret_path = format!("/v1/scenarios/{id}/steps/hook/secret");
    let (_, first) = call(&api, http_event("GET", &secret_path, Some(KEY), None)).await;
    let send = |event_id: &str, contact: i64| {
        let mut e = event(event_id);
        e["contact"]["id"] = json!(contact);
        engine.intake(1, e)
    };
    let delivered = |n: usize| {
        let (aws, engine, queue, rx) = (&aws, &engine, queue.clone(), &rx);
        async move {
            for _ in 0..40 {
                pump(aws, engine, queue.as_ref()).await;
                if rx.count() >= n {
                    return rx.received();
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("{n} requests not received");
        }
    };
    send("evt-r1", 1).await.unwrap();
    send("evt-r2", 2).await.unwrap();
    let got = delivered(2).await;
    let signatures = |r: &hookline_local::receiver::Received| {
        r.header("webhook-signature").unwrap().split(' ').count()
    };
    assert!(got.iter().all(|r| signatures(r) == 1));

    let (status, rotated) = call(
        &api,
        http_event("POST", &format!("{secret_path}/rotate"), Some(KEY), None),
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    send("evt-r3", 3).await.unwrap();
    let got = delivered(3).await;
    let last = got.last().unwrap();
    assert!(last.body.contains("\"id\":3"), "{}", last.body);
    assert_eq!(
        signatures(last),
        2,
        "signed with the new and the previous secret"
    );
    for secret in [&first["secret"], &rotated["secret"]] {
        let v = hookline_local::receiver::reference_verdicts(
            secret.as_str().unwrap(),
            last,
            &last.body,
            0,
        );
        assert_eq!(v, json!({"standardwebhooks": "ok", "svix": "ok"}));
    }
}
