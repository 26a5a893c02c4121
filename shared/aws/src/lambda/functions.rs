//! Each function's whole `main`: its cold start, then its events (HTTP routes, SQS batches,
//! the tick, the table's stream) told apart by their shape.

use aws_lambda_events::event::sqs::SqsEvent;

use super::engine::cold_start;
use super::{
    Clients, counters_up_to_date, engine_with, handle_batch, handle_intake_batch, handle_stream,
    init,
};
use crate::DynamoStore;

/// The whole `main` of an SQS consumer (`scenario-advance`, `webhook-deliver`): a cold start,
/// then every batch through [`handle_batch`].
pub async fn run_sqs_consumer() -> Result<(), lambda_runtime::Error> {
    use aws_lambda_events::event::sqs::SqsEvent;
    use lambda_runtime::{LambdaEvent, service_fn};
    let (engine, queue) = init().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let (engine, queue) = (engine.clone(), queue.clone());
        async move {
            let response = handle_batch(&engine, queue.as_ref(), event.payload).await;
            crate::emf::flush();
            Ok::<_, lambda_runtime::Error>(response)
        }
    }))
    .await
}

/// The whole `main` of `trigger-intake`: the HTTP routes (API Gateway) and the intake queue
/// (SQS) in one function, told apart by the event's shape.
pub async fn run_trigger_intake() -> Result<(), lambda_runtime::Error> {
    use lambda_runtime::{LambdaEvent, service_fn};
    let (engine, _queue) = init().await?;
    let http = lambda_http::Adapter::from(crate::http_api::intake_routes(engine.clone()));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let (engine, mut http) = (engine.clone(), http.clone());
        crate::emf::flushed(async move {
            let LambdaEvent { payload, context } = event;
            if is_tick(&payload) {
                // the one-minute schedule: queue the occurrences of every minute not yet swept
                let swept = engine.sweep().await?;
                tracing::info!(
                    minutes = swept.minutes,
                    occurrences = swept.occurrences,
                    "swept"
                );
                return Ok(serde_json::json!({
                    "minutes": swept.minutes,
                    "occurrences": swept.occurrences,
                }));
            }
            if is_sqs(&payload) {
                let batch: SqsEvent = serde_json::from_value(payload)?;
                let answer = handle_intake_batch(&engine, batch).await;
                return Ok::<_, lambda_runtime::Error>(serde_json::to_value(answer)?);
            }
            answer_http(&mut http, payload, context).await
        })
    }))
    .await
}

/// The whole `main` of `scenario-api`: its routes (API Gateway), the EMF lines of each request
/// (a resend's attempt) printed when it is answered.
pub async fn run_scenario_api() -> Result<(), lambda_runtime::Error> {
    use lambda_runtime::{LambdaEvent, service_fn};
    let (engine, _queue) = init().await?;
    let http = lambda_http::Adapter::from(crate::http_api::scenario_routes(engine));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let mut http = http.clone();
        crate::emf::flushed(async move {
            let LambdaEvent { payload, context } = event;
            answer_http(&mut http, payload, context).await
        })
    }))
    .await
}

/// An API Gateway event (HTTP API, v2) through a function's routes: the answer Lambda returns.
async fn answer_http<S>(
    http: &mut S,
    payload: serde_json::Value,
    context: lambda_runtime::Context,
) -> Result<serde_json::Value, lambda_runtime::Error>
where
    S: lambda_http::tower::Service<
            lambda_runtime::LambdaEvent<lambda_http::request::LambdaRequest>,
        >,
    S::Response: serde::Serialize,
    S::Error: std::error::Error + Send + Sync + 'static,
{
    use lambda_http::tower::ServiceExt;
    let request: lambda_http::request::LambdaRequest = serde_json::from_value(payload)?;
    let response = http
        .ready()
        .await?
        .call(lambda_runtime::LambdaEvent::new(request, context))
        .await?;
    Ok(serde_json::to_value(response)?)
}

/// The input of the one-minute tick schedule (template `TickSchedule`).
pub const TICK_INPUT: &str = r#"{"hooklineTick":true}"#;

/// The tick schedule's input, not an HTTP request.
pub fn is_tick(payload: &serde_json::Value) -> bool {
    payload.get("hooklineTick") == Some(&serde_json::Value::Bool(true))
}

/// An SQS batch (`{"Records": [{"eventSource": "aws:sqs", …}]}`), not an HTTP request.
pub fn is_sqs(payload: &serde_json::Value) -> bool {
    payload
        .pointer("/Records/0/eventSource")
        .and_then(|s| s.as_str())
        == Some("aws:sqs")
}

/// A DynamoDB stream batch (`{"Records": [{"eventSource": "aws:dynamodb", …}]}`), or the
/// closing call of a tumbling window (`shardId` and `window`, perhaps no records).
pub fn is_stream(payload: &serde_json::Value) -> bool {
    payload.get("shardId").is_some() && payload.get("window").is_some()
        || payload
            .pointer("/Records/0/eventSource")
            .and_then(|s| s.as_str())
            == Some("aws:dynamodb")
}

/// The whole `main` of `stats-query`: the HTTP routes (API Gateway) and the table's stream,
/// which keeps the counters, told apart by the event's shape.
pub async fn run_stats_query() -> Result<(), lambda_runtime::Error> {
    use lambda_runtime::{LambdaEvent, service_fn};
    let (config, settings) = cold_start().await?;
    let clients = Clients::new(&config);
    let store = DynamoStore::new(clients.dynamodb.clone(), &settings.table);
    let (engine, _queue) = engine_with(clients, &settings)?;
    let streams = aws_sdk_dynamodbstreams::Client::new(&config);
    let engine = counters_up_to_date(engine, store.clone(), streams);
    let http = lambda_http::Adapter::from(crate::http_api::stats_routes(engine));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let (store, mut http) = (store.clone(), http.clone());
        crate::emf::flushed(async move {
            let LambdaEvent { payload, context } = event;
            if is_stream(&payload) {
                return Ok::<_, lambda_runtime::Error>(handle_stream(&store, &payload).await?);
            }
            answer_http(&mut http, payload, context).await
        })
    }))
    .await
}
