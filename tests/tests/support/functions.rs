//! What the tests of the Lambda functions share: the routers called with API Gateway events,
//! the event source mapping played by hand, scenarios and events, the engine on the emulator,
//! and a client that crashes after a chosen write. Included by `aws_functions.rs` and
//! `aws_crash.rs` beside `support` (the functions' own tests include `support` alone).

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::AfterDeserializationInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use hookline_aws::aws_lambda_events::event::sqs::SqsEvent;
use hookline_aws::lambda::handle_batch;
use hookline_core::Hookline;
use hookline_core::domain::retry::RetryPolicy;
use hookline_core::ports::*;
use hookline_local::receiver::{Receiver, ReceiverOptions};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::support::{Aws, http_event, sqs_event};

pub const KEY: &str = "hk_aws_test_key_account_1";

pub async fn call(router: &axum::Router, event: String) -> (u16, Value) {
    let request = lambda_http::request::from_str(&event).expect("an API Gateway v2 event");
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Plays the event source mapping once over both queues; returns how many messages it handled.
pub async fn pump(aws: &Aws, engine: &Hookline, queue: &dyn Queue) -> usize {
    let mut handled = 0;
    for q in [&aws.settings.advance_queue, &aws.settings.deliver_queue] {
        handled += pump_queue(aws, engine, queue, q).await;
    }
    handled
}

/// The event source mapping once over one queue.
pub async fn pump_queue(
    aws: &Aws,
    engine: &Hookline,
    queue: &dyn Queue,
    q: &hookline_aws::QueueRef,
) -> usize {
    let mut handled = 0;
    {
        let messages = aws.receive(q).await;
        if messages.is_empty() {
            return 0;
        }
        handled += messages.len();
        let event: SqsEvent = serde_json::from_value(sqs_event(&q.arn, &messages)).unwrap();
        let response = handle_batch(engine, queue, event).await;
        let failed: Vec<String> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        let sqs = aws_sdk_sqs::Client::new(&aws.config);
        for (receipt, id, _) in &messages {
            if failed.contains(id) {
                // visible again at once: SQS would redeliver it after the visibility timeout
                sqs.change_message_visibility()
                    .queue_url(&q.url)
                    .receipt_handle(receipt)
                    .visibility_timeout(0)
                    .send()
                    .await
                    .unwrap();
            } else {
                aws.delete(q, receipt).await;
            }
        }
    }
    handled
}

pub fn scenario(url: &str) -> Value {
    json!({
        "name": "to the CRM", "trigger": {"type": "form_subscribed", "formId": 12}, "start": "hook",
        "steps": [{"id": "hook", "type": "send_webhook", "url": url,
                   "fields": ["email", "firstname"], "additional": {"full_name": "{{firstname}} {{lastname}}"},
                   "headers": {"X-Api-Key": "abc123"}, "next": "pause"},
                  {"id": "pause", "type": "wait", "duration": "PT1S", "next": null}]
    })
}

pub fn event(id: &str) -> Value {
    json!({"id": id, "type": "form_subscribed",
           "contact": {"id": 54321, "email": "john.doe@example.org", "firstname": "John", "lastname": "Doe"},
           "context": {"formId": 12}})
}

/// A scenario of the same trigger whose only step is the webhook: its enrollment ends as the
/// delivery is made (nothing to hand back after the first attempt).
pub fn webhook_only(url: &str) -> Value {
    json!({
        "name": "to the CRM, last step", "trigger": {"type": "form_subscribed", "formId": 12},
        "start": "only",
        "steps": [{"id": "only", "type": "send_webhook", "url": url, "fields": ["email"], "next": null}]
    })
}

/// A webhook, a wait, a webhook: the second delivery is made by scenario-advance, after the
/// hand-back and the wait (each move a queued task).
pub fn webhook_wait_webhook(first: &str, second: &str) -> Value {
    json!({
        "name": "twice, a second apart", "trigger": {"type": "form_subscribed", "formId": 12},
        "start": "first",
        "steps": [{"id": "first", "type": "send_webhook", "url": first, "fields": ["email"], "next": "gap"},
                  {"id": "gap", "type": "wait", "duration": "PT1S", "next": "second"},
                  {"id": "second", "type": "send_webhook", "url": second, "fields": ["email"], "next": null}]
    })
}

/// Creates and activates the scenario through the scenario-api routes; returns its id.
pub async fn setup(engine: &Hookline, url: &str) -> String {
    engine.register_key(KEY, 1).await.unwrap();
    activate(engine, &scenario(url)).await
}

/// Creates and activates this scenario (the key registered); returns its id.
pub async fn activate(engine: &Hookline, scenario: &Value) -> String {
    let api = hookline_aws::http_api::scenario_routes(engine.clone());
    let (status, created) = call(
        &api,
        http_event("POST", "/v1/scenarios", Some(KEY), Some(scenario)),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let (status, _) = call(
        &api,
        http_event(
            "POST",
            &format!("/v1/scenarios/{id}/activate"),
            Some(KEY),
            None,
        ),
    )
    .await;
    assert_eq!(status, 200);
    id
}

/// A fresh emulator, the engine on it, a receiver that refuses its first `refused` requests,
/// and the scenario activated towards it (its id).
pub async fn started(
    refused: usize,
) -> (Aws, Hookline, Arc<hookline_aws::SqsQueue>, Receiver, String) {
    let aws = Aws::fresh(RetryPolicy::parse("60s", "1s").unwrap()).await;
    let (engine, queue) = hookline_aws::lambda::engine(&aws.config, &aws.settings).unwrap();
    let rx = Receiver::start(
        "127.0.0.1:0",
        ReceiverOptions {
            fail_first: refused,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let id = setup(&engine, &rx.url("/hooks")).await;
    (aws, engine, queue, rx, id)
}

/// A step's statistics through stats-query, once the table's stream has been handed over.
pub async fn stats(aws: &Aws, engine: &Hookline, id: &str, step: &str) -> Value {
    aws.settle().await;
    let stats = hookline_aws::http_api::stats_routes(engine.clone());
    let (status, body) = call(
        &stats,
        http_event(
            "GET",
            &format!("/v1/scenarios/{id}/steps/{step}/stats"),
            Some(KEY),
            None,
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// A webhook right after a webhook: the second delivery is made by scenario-advance on the
/// hand-back.
pub fn webhook_webhook(first: &str, second: &str) -> Value {
    json!({
        "name": "twice in a row", "trigger": {"type": "form_subscribed", "formId": 12},
        "start": "first",
        "steps": [{"id": "first", "type": "send_webhook", "url": first, "fields": ["email"], "next": "second"},
                  {"id": "second", "type": "send_webhook", "url": second, "fields": ["email"], "next": null}]
    })
}

/// A crash right after the n-th write request of the whole flow — every DynamoDB write
/// (`PutItem`, `UpdateItem`, `TransactWriteItems`, …), SQS send and Scheduler schedule — came
/// back: the write landed, and its caller gets an error instead of the answer, as when a Lambda
/// dies before it reads it. Only once.
#[derive(Debug, Clone)]
pub struct CrashAfter {
    pub writes: Arc<AtomicUsize>,
    pub n: usize,
}

pub const WRITES: &[&str] = &[
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "TransactWriteItems",
    "BatchWriteItem",
    "SendMessage",
    "SendMessageBatch",
    "CreateSchedule",
];

impl Intercept for CrashAfter {
    fn name(&self) -> &'static str {
        "crash-after-write"
    }

    fn read_after_deserialization(
        &self,
        _ctx: &AfterDeserializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = cfg.load::<Metadata>().map(|m| m.name()).unwrap_or_default();
        if WRITES.contains(&op) && self.writes.fetch_add(1, Ordering::SeqCst) + 1 == self.n {
            return Err(format!("injected crash after write {} ({op})", self.n).into());
        }
        Ok(())
    }
}

/// A DynamoDB client that crashes as `crash` says.
pub fn engine_client(crash: &CrashAfter, aws: &Aws) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&aws.config)
            .interceptor(crash.clone())
            .build(),
    )
}

impl CrashAfter {
    /// The engine over clients that crash this way.
    pub fn engine(&self, aws: &Aws) -> (Hookline, Arc<hookline_aws::SqsQueue>) {
        let c = &aws.config;
        let clients = hookline_aws::lambda::Clients {
            dynamodb: engine_client(self, aws),
            sqs: aws_sdk_sqs::Client::from_conf(
                aws_sdk_sqs::config::Builder::from(c)
                    .interceptor(self.clone())
                    .build(),
            ),
            scheduler: aws_sdk_scheduler::Client::from_conf(
                aws_sdk_scheduler::config::Builder::from(c)
                    .interceptor(self.clone())
                    .build(),
            ),
        };
        hookline_aws::lambda::engine_with(clients, &aws.settings).unwrap()
    }
}
