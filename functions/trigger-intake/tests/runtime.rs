//! The real `trigger-intake` binary over the Lambda Runtime API (played here on 127.0.0.1),
//! on DynamoDB and SQS in moto: one function serves API Gateway requests, the intake queue and
//! the one-minute tick of time-based triggers, told apart by the event's shape.

#![allow(clippy::unwrap_used)]

#[path = "../../../tests/tests/support/mod.rs"]
mod support;

use hookline_core::domain::retry::RetryPolicy;
use serde_json::{Value, json};
use support::{Aws, http_event, sqs_event};

#[tokio::test(flavor = "multi_thread")]
async fn one_binary_serves_the_http_routes_the_intake_queue_and_the_tick() {
    let aws = Aws::fresh(RetryPolicy::default()).await;
    let (_, id) = support::runtime::active_scenario(&aws, "hk_runtime_test_key_1").await;

    let event = |n: i64| json!({"id": format!("e{n}"), "type": "group_added", "contact": {"id": n, "email": "a@example.org"}});
    let http: Value = serde_json::from_str(&http_event(
        "POST",
        "/v1/events",
        Some("hk_runtime_test_key_1"),
        Some(&event(1)),
    ))
    .unwrap();
    let intake_arn = "arn:aws:sqs:us-east-1:123456789012:intake";
    let queued = sqs_event(
        intake_arn,
        &[
            (
                "r1".into(),
                "good".into(),
                json!({"account": 1, "event": event(2)}).to_string(),
            ),
            ("r2".into(), "bad".into(), "{\"account\": 1}".into()),
        ],
    );
    // an occurrence of a time-based trigger due now, and the tick schedule's input: the tick
    // sweeps every minute since the last one swept (two minutes ago here)
    use hookline_core::ports::{OccurrenceStore, Scheduled, SweepState, minute_of};
    let now = jiff::Timestamp::now();
    let store = aws.store();
    store
        .schedule(&[Scheduled {
            account: 1,
            scenario_id: id.clone(),
            contact_id: 3,
            date: now.to_zoned(jiff::tz::TimeZone::UTC).date(),
            at: now,
        }])
        .await
        .unwrap();
    store
        .set_swept(&SweepState {
            minute: minute_of(now) - 2,
            cursor: None,
        })
        .await
        .unwrap();
    let tick: Value = serde_json::from_str(hookline_aws::lambda::TICK_INPUT).unwrap();
    let s = &aws.settings;
    let answers = support::runtime::run(
        env!("CARGO_BIN_EXE_trigger-intake"),
        &aws,
        vec![
            ("req-http".to_string(), http),
            ("req-sqs".to_string(), queued),
            ("req-tick".to_string(), tick),
        ],
    )
    .await;
    assert_eq!(answers.len(), 3, "{answers:?}");
    let (id0, kind0, http_answer) = &answers[0];
    assert_eq!((id0.as_str(), kind0.as_str()), ("req-http", "response"));
    assert_eq!(http_answer["statusCode"], 202, "{http_answer}");
    let body: Value = serde_json::from_str(http_answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["enrollments"][0]["scenarioId"], json!(id));
    let (id1, kind1, sqs_answer) = &answers[1];
    assert_eq!((id1.as_str(), kind1.as_str()), ("req-sqs", "response"));
    assert_eq!(
        sqs_answer,
        &json!({"batchItemFailures": [{"itemIdentifier": "bad"}]})
    );
    // both events walked to the webhook step: two first attempts queued
    let queued = aws.receive(&s.deliver_queue).await;
    assert_eq!(queued.len(), 2, "{queued:?}");
    // the tick swept two or three minutes and queued the occurrence to fire
    let (id2, kind2, tick_answer) = &answers[2];
    assert_eq!((id2.as_str(), kind2.as_str()), ("req-tick", "response"));
    assert_eq!(tick_answer["occurrences"], 1, "{tick_answer}");
    assert!(
        tick_answer["minutes"].as_i64().unwrap() >= 2,
        "{tick_answer}"
    );
    let fires = aws.receive(&s.advance_queue).await;
    assert!(
        fires
            .iter()
            .any(|(_, _, body)| body.contains("fire.v1") && body.contains(&id)),
        "{fires:?}"
    );
}
