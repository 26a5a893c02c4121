//! The Lambda Runtime API, played on 127.0.0.1 for a real function binary: it hands the
//! binary the queued events one by one and keeps what it answers.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use serde_json::Value;

use super::Aws;

#[derive(Clone, Default)]
pub struct Runtime {
    pub events: Arc<Mutex<VecDeque<(String, Value)>>>,
    pub answers: Arc<Mutex<Vec<(String, String, Value)>>>,
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
                "arn:aws:lambda:us-east-1:123456789012:function:hookline"
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

/// The engine over `aws`, `key` registered for account 1, and the id of an active scenario of
/// account 1: `group_added`, then one webhook step `hook` (to a loopback port nothing listens
/// on: an attempt is refused, and the delivery stays pending).
pub async fn active_scenario(aws: &Aws, key: &str) -> (hookline_core::Hookline, String) {
    let (engine, _) = hookline_aws::lambda::engine(&aws.config, &aws.settings).unwrap();
    engine.register_key(key, 1).await.unwrap();
    let def = serde_json::json!({"name": "rt", "trigger": {"type": "group_added"}, "start": "hook",
        "steps": [{"id": "hook", "type": "send_webhook", "url": "http://127.0.0.1:9/h", "next": null}]});
    let id = engine.create_scenario(1, def).await.unwrap().id;
    engine.activate_scenario(1, &id).await.unwrap();
    (engine, id)
}

/// Runs `binary` (a function's `bootstrap`) with the settings of `aws` against a runtime that
/// hands it `events` (request id, event); returns its answers (request id, `response` or
/// `error`, body) once it has answered them all, or after 10 s.
pub async fn run(
    binary: &str,
    aws: &Aws,
    events: Vec<(String, Value)>,
) -> Vec<(String, String, Value)> {
    run_logged(binary, aws, events, None).await.0
}

/// [`run`] with the binary's `RUST_LOG` set to `rust_log` (unset: `None`); also returns what
/// the binary wrote to its standard output (its log lines).
pub async fn run_logged(
    binary: &str,
    aws: &Aws,
    events: Vec<(String, Value)>,
    rust_log: Option<&str>,
) -> (Vec<(String, String, Value)>, String) {
    let rt = Runtime::default();
    let n = events.len();
    rt.events.lock().unwrap().extend(events);
    let app = axum::Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/{kind}", post(answered))
        .with_state(rt.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let s = &aws.settings;
    let mut command = std::process::Command::new(binary);
    match rust_log {
        Some(level) => command.env("RUST_LOG", level),
        None => command.env_remove("RUST_LOG"),
    };
    let mut child = command
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "hookline")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_ENDPOINT_URL", super::endpoint())
        .env("HOOKLINE_TABLE", &s.table)
        .env("HOOKLINE_ADVANCE_QUEUE_URL", &s.advance_queue.url)
        .env("HOOKLINE_ADVANCE_QUEUE_ARN", &s.advance_queue.arn)
        .env("HOOKLINE_DELIVER_QUEUE_URL", &s.deliver_queue.url)
        .env("HOOKLINE_DELIVER_QUEUE_ARN", &s.deliver_queue.arn)
        .env("HOOKLINE_SCHEDULE_GROUP", &s.schedule_group)
        .env("HOOKLINE_SCHEDULER_ROLE_ARN", &s.scheduler_role_arn)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // read as it comes (a full pipe would stop the binary)
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
        out
    });
    for _ in 0..200 {
        if rt.answers.lock().unwrap().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let logs = reader.join().unwrap_or_default();
    let answers = rt.answers.lock().unwrap().clone();
    (answers, logs)
}
