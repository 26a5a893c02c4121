//! One Lambda function of the AWS soak (scripts/soak-aws.sh), as its own process so that it
//! can be killed (SIGKILL) in the middle of an invocation; the event source mapping or the API
//! Gateway in front of it is played here, over moto on 127.0.0.1 (`HOOKLINE_TEST_AWS_ENDPOINT`).
//! The functions' settings come from the environment, as the SAM template passes them.
//!
//! ```text
//! soak_worker setup <receiver url> <retry window> <retry delays>
//!     a fresh table, queues and schedule group, the soak key for account 1, and an active
//!     scenario (one webhook step `hook` to the receiver); prints one JSON line: the functions'
//!     environment (`env`) and the scenario's id (`scenario`)
//! soak_worker consume advance|deliver <visibility s> <function timeout s>
//!     scenario-advance or webhook-deliver behind its event source mapping: receives batches
//!     of up to 10 (the messages invisible for <visibility> s), hands each to `handle_batch`
//!     (at most <function timeout> s: then the invocation is dropped, as Lambda's timeout
//!     does), deletes what passed; a failed or unanswered message comes back once its
//!     visibility ends. Prints `batch <envelope id>=<delivery id>,…` as an invocation starts
//!     (its deliveries), `end` when it is answered, `timeout <unix time>` when it is dropped
//! soak_worker http intake|stats <listen address>
//!     trigger-intake's or stats-query's routes behind API Gateway (each HTTP request made into
//!     an API Gateway v2 event); stats-query also plays its table-stream mapping, applying the
//!     stream to the counters about once a second; prints `listening on <address>` when ready
//! ```

#![allow(clippy::unwrap_used, clippy::print_stdout)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use hookline_aws::aws_lambda_events::event::sqs::SqsEvent;
use hookline_aws::lambda::{Settings, handle_batch};
use hookline_core::domain::ids::derived_id;
use hookline_core::domain::retry::RetryPolicy;
use hookline_core::ports::Task;
use serde_json::json;
use tower::ServiceExt;

/// The soak's API key (account 1).
const KEY: &str = "hk_soak_account_one_0001";

fn settings() -> Settings {
    let mut s = Settings::from_env(|k| std::env::var(k).ok()).unwrap();
    s.allow_private_targets = true; // the receiver is on 127.0.0.1
    s
}

async fn setup(receiver: &str, window: &str, delays: &str) {
    let aws = support::Aws::fresh(RetryPolicy::parse(window, delays).unwrap()).await;
    let (engine, _) = hookline_aws::lambda::engine(&aws.config, &aws.settings).unwrap();
    engine.register_key(KEY, 1).await.unwrap();
    let def = json!({"name": "soak", "trigger": {"type": "group_added", "groupId": 7},
        "start": "hook", "steps": [{"id": "hook", "type": "send_webhook", "url": receiver,
        "fields": ["email"], "next": null}]});
    let id = engine.create_scenario(1, def).await.unwrap().id;
    engine.activate_scenario(1, &id).await.unwrap();
    let s = &aws.settings;
    let env = json!({
        "HOOKLINE_TABLE": s.table,
        "HOOKLINE_ADVANCE_QUEUE_URL": s.advance_queue.url,
        "HOOKLINE_ADVANCE_QUEUE_ARN": s.advance_queue.arn,
        "HOOKLINE_DELIVER_QUEUE_URL": s.deliver_queue.url,
        "HOOKLINE_DELIVER_QUEUE_ARN": s.deliver_queue.arn,
        "HOOKLINE_SCHEDULE_GROUP": s.schedule_group,
        "HOOKLINE_SCHEDULER_ROLE_ARN": s.scheduler_role_arn,
        "HOOKLINE_RETRY_WINDOW": window,
        "HOOKLINE_RETRY_DELAYS": delays,
        "HOOKLINE_ALLOW_PRIVATE_TARGETS": "true",
    });
    println!(
        "{}",
        json!({"env": env, "scenario": id, "stream": aws.stream_arn})
    );
}

async fn consume(which: &str, visibility: i32, timeout: u64) {
    let settings = settings();
    let config = support::sdk_config().await;
    let (engine, queue) = hookline_aws::lambda::engine(&config, &settings).unwrap();
    let q = match which {
        "advance" => settings.advance_queue.clone(),
        "deliver" => settings.deliver_queue.clone(),
        other => panic!("no queue {other}: advance or deliver"),
    };
    let sqs = aws_sdk_sqs::Client::new(&config);
    loop {
        // no long polling: moto serves one request at a time, a waiting receive would hold it
        let received = sqs
            .receive_message()
            .queue_url(&q.url)
            .max_number_of_messages(10)
            .visibility_timeout(visibility)
            .wait_time_seconds(0)
            .send()
            .await;
        let messages = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(e) => {
                eprintln!("receive: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if messages.is_empty() {
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        }
        let triples: Vec<(String, String, String)> = messages
            .into_iter()
            .map(|m| {
                (
                    m.receipt_handle.unwrap(),
                    m.message_id.unwrap(),
                    m.body.unwrap(),
                )
            })
            .collect();
        // the envelope ids this invocation may send (its deliveries'), for the driver to tell
        // a repeat after this process is killed from one that is not
        let envelopes: Vec<String> = triples
            .iter()
            .filter_map(|(_, _, body)| serde_json::from_str::<Task>(body).ok())
            .filter_map(|task| {
                let key = task.dedupe_key();
                let id = key.strip_prefix("dlv:")?.split(':').next()?.to_string();
                Some(format!("{}={id}", derived_id("evt", &[&id])))
            })
            .collect();
        println!("batch {}", envelopes.join(","));
        let event: SqsEvent = serde_json::from_value(support::sqs_event(&q.arn, &triples)).unwrap();
        let answer = tokio::time::timeout(
            Duration::from_secs(timeout),
            handle_batch(&engine, queue.as_ref(), event),
        )
        .await;
        let Ok(response) = answer else {
            // as a kill: the driver counts it among them (its time, in seconds)
            println!(
                "timeout {} (an invocation ran past {timeout} s: dropped, its messages come back)",
                jiff::Timestamp::now().as_millisecond() as f64 / 1000.0
            );
            continue;
        };
        println!("end");
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        let mut delete = sqs.delete_message_batch().queue_url(&q.url);
        let mut any = false;
        for (i, (receipt, id, _)) in triples.iter().enumerate() {
            if failed.contains(&id.as_str()) {
                continue; // visible again when its visibility ends
            }
            any = true;
            delete = delete.entries(
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(receipt)
                    .build()
                    .unwrap(),
            );
        }
        if any && let Err(e) = delete.send().await {
            eprintln!("delete: {e}");
        }
    }
}

/// An HTTP request made into an API Gateway v2 event and handed to `router`.
async fn gateway(
    router: axum::Router,
    request: axum::extract::Request,
) -> axum::response::Response {
    let method = request.method().to_string();
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let key = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let bytes = axum::body::to_bytes(request.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let body: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
    let event = support::http_event(&method, &path, key.as_deref(), body.as_ref());
    let request = lambda_http::request::from_str(&event).unwrap();
    let response = router.oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    axum::response::Response::from_parts(parts, axum::body::Body::new(body))
}

async fn http(which: &str, listen: &str) {
    let settings = settings();
    let config = support::sdk_config().await;
    let clients = hookline_aws::lambda::Clients::new(&config);
    let store = hookline_aws::DynamoStore::new(clients.dynamodb.clone(), &settings.table);
    let (engine, _) = hookline_aws::lambda::engine_with(clients, &settings).unwrap();
    let router = match which {
        "intake" => hookline_aws::http_api::intake_routes(engine),
        "stats" => {
            let streams = aws_sdk_dynamodbstreams::Client::new(&config);
            // the table stream's event source mapping, about once a second
            let mapping =
                hookline_aws::stream::CountersUpToDate::new(store.clone(), streams.clone());
            tokio::spawn(async move {
                loop {
                    if let Err(e) = mapping.catch_up().await {
                        eprintln!("stream: {e:#}");
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
            let engine = hookline_aws::lambda::counters_up_to_date(engine, store, streams);
            hookline_aws::http_api::stats_routes(engine)
        }
        other => panic!("no function {other}: intake or stats"),
    };
    let app = axum::Router::new()
        .fallback(move |request: axum::extract::Request| gateway(router.clone(), request));
    let listener = tokio::net::TcpListener::bind(listen).await.unwrap();
    println!("listening on {}", listener.local_addr().unwrap());
    axum::serve(listener, app).await.unwrap();
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or_default();
    match arg(0) {
        "setup" => setup(arg(1), arg(2), arg(3)).await,
        "consume" => {
            consume(
                arg(1),
                arg(2).parse().unwrap_or(20),
                arg(3).parse().unwrap_or(15),
            )
            .await
        }
        "http" => http(arg(1), arg(2)).await,
        _ => {
            eprintln!("usage: soak_worker setup|consume|http … (see the source's first lines)");
            std::process::exit(2);
        }
    }
}
