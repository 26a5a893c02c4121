//! The real `trigger-intake` binary over the Lambda Runtime API (played here on 127.0.0.1),
//! on DynamoDB and SQS in moto: one function serves API Gateway requests, the intake queue and
//! the one-minute tick of time-based triggers, told apart by the event's shape.

#![allow(clippy::unwrap_used)]

#[path = "../../../tests/tests/support/mod.rs"]
mod support;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use hookline_core::domain::retry::RetryPolicy;
use serde_json::{Value, json};
use support::{Aws, http_event, sqs_event};

#[derive(Clone, Default)]
struct Runtime {
    events: Arc<Mutex<VecDeque<(String, Value)>>>,
    answers: Arc<Mutex<Vec<(String, String, Value)>>>,
}

async fn next(State(rt): State<Runtime>) -> (HeaderMap, String) {
    loop {
        let event = rt.events.lock().unwrap().pop_front();
        if let Some((id, event)) = event {
            let mut headers = HeaderMap::new();
            headers.insert("lambda-runtime-aws-request-id", id.parse().unwrap());
            let deadline = jiff::Timestamp::now().as_millisecond() + 30_000;
            headers.insert(
                "lambda-runtime-deadline-ms",
                deadline.to_string().parse().unwrap(),
            );
            headers.insert(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:trigger-intake"
                    .parse()
                    .unwrap(),
            );
            headers.insert("lambda-runtime-trace-id", "Root=1-0-0".parse().unwrap());
            return (headers, event.to_string());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn answered(
    State(rt): State<Runtime>,
    Path((id, kind)): Path<(String, String)>,
    body: String,
) -> &'static str {
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    rt.answers.lock().unwrap().push((id, kind, value));
    "{}"
}

#[tokio::test(flavor = "multi_thread")]
async fn one_binary_serves_the_http_routes_the_intake_queue_and_the_tick() {
    let aws = Aws::fresh(RetryPolicy::default()).await;
    let (engine, _) = hookline_aws::lambda::engine(&aws.config, &aws.settings).unwrap();
    engine
        .register_key("hk_runtime_test_key_1", 1)
        .await
        .unwrap();
    let def = json!({"name": "rt", "trigger": {"type": "group_added"}, "start": "hook",
        "steps": [{"id": "hook", "type": "send_webhook", "url": "https://example.com/h", "next": null}]});
    let id = engine.create_scenario(1, def).await.unwrap().id;
    engine.activate_scenario(1, &id).await.unwrap();

    let rt = Runtime::default();
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
    rt.events.lock().unwrap().extend([
        ("req-http".to_string(), http),
        ("req-sqs".to_string(), queued),
        ("req-tick".to_string(), tick),
    ]);
    let app = axum::Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/{kind}", post(answered))
        .with_state(rt.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let s = &aws.settings;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_trigger-intake"))
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "trigger-intake")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_ENDPOINT_URL", support::endpoint())
        .env("HOOKLINE_TABLE", &s.table)
        .env("HOOKLINE_ADVANCE_QUEUE_URL", &s.advance_queue.url)
        .env("HOOKLINE_ADVANCE_QUEUE_ARN", &s.advance_queue.arn)
        .env("HOOKLINE_DELIVER_QUEUE_URL", &s.deliver_queue.url)
        .env("HOOKLINE_DELIVER_QUEUE_ARN", &s.deliver_queue.arn)
        .env("HOOKLINE_SCHEDULE_GROUP", &s.schedule_group)
        .env("HOOKLINE_SCHEDULER_ROLE_ARN", &s.scheduler_role_arn)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if rt.answers.lock().unwrap().len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let answers = rt.answers.lock().unwrap().clone();
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
