//! What every Lambda binary shares: settings read once from the environment, clients built
//! once per cold start, and the SQS batch handler.

use std::sync::Arc;

use anyhow::Context;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use hookline_core::Hookline;
use hookline_core::app::Outcome;
use hookline_core::domain::retry::{DEFAULT_DELAYS, DEFAULT_WINDOW, RetryPolicy};
use hookline_core::ports::{Clock, Pipeline, Ports, Queue, SystemClock, Task, UlidIds};
use hookline_sender::ReqwestSender;

use crate::{DynamoStore, QueueRef, SqsQueue};

/// The settings the SAM template passes in (SPEC §10).
#[derive(Debug, Clone)]
pub struct Settings {
    pub table: String,
    pub advance_queue: QueueRef,
    pub deliver_queue: QueueRef,
    pub schedule_group: String,
    pub scheduler_role_arn: String,
    pub policy: RetryPolicy,
    pub allow_private_targets: bool,
    /// Attempts in flight per destination over every instance (SPEC §6a,
    /// `HOOKLINE_DESTINATION_CONCURRENCY`, default 8).
    pub destination_concurrency: u32,
    /// The most `webhook-deliver` instances at once: the deliver event source's
    /// `MaximumConcurrency` (`HOOKLINE_DELIVER_INSTANCES`, default 8). Each instance lets
    /// `destination_concurrency / deliver_instances` (at least 1) be in flight per destination.
    pub deliver_instances: u32,
}

pub const ENV_TABLE: &str = "HOOKLINE_TABLE";
pub const ENV_ADVANCE_URL: &str = "HOOKLINE_ADVANCE_QUEUE_URL";
pub const ENV_ADVANCE_ARN: &str = "HOOKLINE_ADVANCE_QUEUE_ARN";
pub const ENV_DELIVER_URL: &str = "HOOKLINE_DELIVER_QUEUE_URL";
pub const ENV_DELIVER_ARN: &str = "HOOKLINE_DELIVER_QUEUE_ARN";
pub const ENV_SCHEDULE_GROUP: &str = "HOOKLINE_SCHEDULE_GROUP";
pub const ENV_SCHEDULER_ROLE: &str = "HOOKLINE_SCHEDULER_ROLE_ARN";

/// Every environment variable a function reads.
pub const ENV_VARS: &[&str] = &[
    ENV_TABLE,
    ENV_ADVANCE_URL,
    ENV_ADVANCE_ARN,
    ENV_DELIVER_URL,
    ENV_DELIVER_ARN,
    ENV_SCHEDULE_GROUP,
    ENV_SCHEDULER_ROLE,
    "HOOKLINE_RETRY_WINDOW",
    "HOOKLINE_RETRY_DELAYS",
    "HOOKLINE_ALLOW_PRIVATE_TARGETS",
    ENV_DESTINATION_CONCURRENCY,
    ENV_DELIVER_INSTANCES,
];

pub const ENV_DESTINATION_CONCURRENCY: &str = "HOOKLINE_DESTINATION_CONCURRENCY";
pub const ENV_DELIVER_INSTANCES: &str = "HOOKLINE_DELIVER_INSTANCES";

/// A whole number setting within `range` (absent or empty: `default`).
fn number(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: u32,
    range: std::ops::RangeInclusive<u32>,
) -> anyhow::Result<u32> {
    let Some(text) = get(name).filter(|v| !v.trim().is_empty()) else {
        return Ok(default);
    };
    match text.trim().parse::<u32>() {
        Ok(v) if range.contains(&v) => Ok(v),
        _ => anyhow::bail!(
            "invalid setting {name}: `{text}` is not a whole number from {} to {}",
            range.start(),
            range.end()
        ),
    }
}

impl Settings {
    /// Reads the settings; an invalid or missing one is an error naming it.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Settings> {
        let required = |name: &str| {
            get(name)
                .filter(|v| !v.is_empty())
                .with_context(|| format!("setting {name} is missing"))
        };
        let window = get("HOOKLINE_RETRY_WINDOW").unwrap_or_else(|| DEFAULT_WINDOW.into());
        let delays = get("HOOKLINE_RETRY_DELAYS").unwrap_or_else(|| DEFAULT_DELAYS.into());
        let policy = RetryPolicy::parse(&window, &delays).map_err(|e| {
            let name = if e.starts_with("retry window") {
                "HOOKLINE_RETRY_WINDOW"
            } else {
                "HOOKLINE_RETRY_DELAYS"
            };
            anyhow::anyhow!("invalid setting {name}: {e}")
        })?;
        let allow_private_targets = match get("HOOKLINE_ALLOW_PRIVATE_TARGETS")
            .as_deref()
            .map(str::trim)
        {
            None | Some("") | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(other) => anyhow::bail!(
                "invalid setting HOOKLINE_ALLOW_PRIVATE_TARGETS: `{other}` is not true or false"
            ),
        };
        Ok(Settings {
            table: required(ENV_TABLE)?,
            advance_queue: QueueRef {
                url: required(ENV_ADVANCE_URL)?,
                arn: required(ENV_ADVANCE_ARN)?,
            },
            deliver_queue: QueueRef {
                url: required(ENV_DELIVER_URL)?,
                arn: required(ENV_DELIVER_ARN)?,
            },
            schedule_group: required(ENV_SCHEDULE_GROUP)?,
            scheduler_role_arn: required(ENV_SCHEDULER_ROLE)?,
            policy,
            allow_private_targets,
            destination_concurrency: number(
                &get,
                ENV_DESTINATION_CONCURRENCY,
                hookline_core::domain::destination::DEFAULT_CONCURRENCY,
                1..=10_000,
            )?,
            deliver_instances: number(&get, ENV_DELIVER_INSTANCES, 8, 2..=1_000)?,
        })
    }
}

/// The engine over DynamoDB, SQS and Scheduler, from an SDK config (region, credentials and
/// an optional endpoint override come from the environment, as aws-config reads them).
pub fn engine(
    config: &aws_config::SdkConfig,
    settings: &Settings,
) -> anyhow::Result<(Hookline, Arc<SqsQueue>)> {
    engine_with(Clients::new(config), settings)
}

/// The three SDK clients, built once per cold start.
pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub scheduler: aws_sdk_scheduler::Client,
}

impl Clients {
    pub fn new(config: &aws_config::SdkConfig) -> Clients {
        Clients {
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            sqs: aws_sdk_sqs::Client::new(config),
            scheduler: aws_sdk_scheduler::Client::new(config),
        }
    }
}

/// The engine over given clients (a benchmark adds interceptors to them).
pub fn engine_with(
    clients: Clients,
    settings: &Settings,
) -> anyhow::Result<(Hookline, Arc<SqsQueue>)> {
    engine_with_clock(clients, settings, Arc::new(SystemClock))
}

/// The engine over given clients and clock (a test moves time itself).
pub fn engine_with_clock(
    clients: Clients,
    settings: &Settings,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<(Hookline, Arc<SqsQueue>)> {
    let store = DynamoStore::new(clients.dynamodb, &settings.table);
    let queue = Arc::new(SqsQueue {
        sqs: clients.sqs,
        scheduler: clients.scheduler,
        advance: settings.advance_queue.clone(),
        deliver: settings.deliver_queue.clone(),
        schedule_group: settings.schedule_group.clone(),
        scheduler_role_arn: settings.scheduler_role_arn.clone(),
        clock: clock.clone(),
    });
    let sender = ReqwestSender::new(settings.allow_private_targets);
    let destinations = crate::DynamoDestinations::new(
        store.clone(),
        clock.clone(),
        settings.destination_concurrency,
        settings.deliver_instances,
    );
    let ports = Ports {
        scenarios: Arc::new(store.clone()),
        contacts: Arc::new(store.clone()),
        enrollments: Arc::new(store.clone()),
        deliveries: Arc::new(store.clone()),
        keys: Arc::new(store.clone()),
        occurrences: Arc::new(store),
        pipeline: Pipeline::Queued(queue.clone()),
        sender: Arc::new(sender),
        clock,
        ids: Arc::new(UlidIds),
        destinations: Arc::new(destinations),
    };
    Ok((Hookline::new(ports, settings.policy.clone()), queue))
}

/// A cold start: JSON logs, settings, SDK config, clients. Called once per process.
pub async fn init() -> anyhow::Result<(Hookline, Arc<SqsQueue>)> {
    let (config, settings) = cold_start().await?;
    engine(&config, &settings)
}

/// JSON logs, settings and the SDK config, read once per process.
async fn cold_start() -> anyhow::Result<(aws_config::SdkConfig, Settings)> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_current_span(false)
        .without_time()
        .try_init()
        .ok();
    crate::emf::install(std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok());
    let settings = Settings::from_env(|k| std::env::var(k).ok())?;
    let config = sdk_defaults().load().await;
    Ok((config, settings))
}

/// `aws_config::load_from_env()`'s loader (latest behavior version, everything from the
/// environment) with [`https_client`] as the HTTP client of the SDK clients and of the
/// credential providers.
pub fn sdk_defaults() -> aws_config::ConfigLoader {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(https_client())
}

/// The SDK's default HTTPS client (aws-smithy-runtime's `default-https-client`: hyper 1 +
/// rustls, the system's root certificates, proxy settings from the environment) with rustls on
/// ring instead of aws-lc: the same TLS 1.2/1.3 cipher suites, ~0.5 MB less in each binary.
pub fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
    use aws_smithy_http_client::{Builder, ConnectorBuilder, proxy::ProxyConfig};
    Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector =
            ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(CryptoMode::Ring));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
}

/// Handles an SQS batch concurrently, one span per message. A message that fails with an
/// error that may pass is reported in `batchItemFailures` (SQS redelivers it); a message that
/// can never succeed (not a task) is logged and acknowledged; a task that asks to run again
/// later is re-enqueued for that time and acknowledged.
pub async fn handle_batch(
    engine: &Hookline,
    queue: &dyn Queue,
    event: SqsEvent,
) -> SqsBatchResponse {
    use tracing::Instrument;
    // the same work twice in one batch (a repeated event's first attempt queued again before
    // the first copy ran, a duplicate from SQS) runs once: copies at once could both POST
    let mut keys = std::collections::HashSet::new();
    let work = event.records.into_iter().map(|record| {
        let id = record.message_id.clone().unwrap_or_default();
        let span = tracing::info_span!("message", message_id = %id);
        let task = record
            .body
            .as_deref()
            .and_then(|b| serde_json::from_str::<Task>(b).ok());
        let copy = task.as_ref().is_some_and(|t| !keys.insert(t.dedupe_key()));
        async move {
            let Some(task) = task else {
                tracing::error!("a message that is not a task was dropped");
                return None;
            };
            if copy {
                tracing::debug!("the same task earlier in this batch: this copy dropped");
                return None;
            }
            let result = match engine.handle(&task).await {
                Ok(Outcome::Done) => Ok(()),
                Ok(Outcome::RetryAt(at)) => queue.enqueue(&task, at).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => None,
                Err(e) => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "message failed; SQS will redeliver it"
                    );
                    Some(id)
                }
            }
        }
        .instrument(span)
    });
    let failed = futures::future::join_all(work).await;
    let mut response = SqsBatchResponse::default();
    for id in failed.into_iter().flatten() {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id;
        response.batch_item_failures.push(failure);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const ALL: &[(&str, &str)] = &[
        (ENV_TABLE, "t"),
        (ENV_ADVANCE_URL, "u1"),
        (ENV_ADVANCE_ARN, "a1"),
        (ENV_DELIVER_URL, "u2"),
        (ENV_DELIVER_ARN, "a2"),
        (ENV_SCHEDULE_GROUP, "g"),
        (ENV_SCHEDULER_ROLE, "r"),
    ];

    #[test]
    fn settings_name_what_is_wrong() {
        let s = Settings::from_env(env(ALL)).unwrap();
        assert_eq!(s.policy, RetryPolicy::default());
        assert!(!s.allow_private_targets);
        let missing = Settings::from_env(env(&ALL[1..])).unwrap_err().to_string();
        assert!(missing.contains(ENV_TABLE), "{missing}");
        let mut bad = ALL.to_vec();
        bad.push(("HOOKLINE_RETRY_DELAYS", "10s,soon"));
        assert!(
            Settings::from_env(env(&bad))
                .unwrap_err()
                .to_string()
                .contains("HOOKLINE_RETRY_DELAYS")
        );
        assert_eq!((s.destination_concurrency, s.deliver_instances), (8, 8));
        for (name, value) in [
            (ENV_DESTINATION_CONCURRENCY, "0"),
            (ENV_DESTINATION_CONCURRENCY, "eight"),
            (ENV_DELIVER_INSTANCES, "1"),
        ] {
            let mut bad = ALL.to_vec();
            bad.push((name, value));
            let e = Settings::from_env(env(&bad)).unwrap_err().to_string();
            assert!(e.contains(name), "{e}");
        }
        let mut bad = ALL.to_vec();
        bad.push(("HOOKLINE_ALLOW_PRIVATE_TARGETS", "maybe"));
        assert!(
            Settings::from_env(env(&bad))
                .unwrap_err()
                .to_string()
                .contains("HOOKLINE_ALLOW_PRIVATE_TARGETS")
        );
    }
}

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

/// A message of the intake queue (SPEC §3): `{"account": <idClient>, "event": {...}}`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct IntakeMessage {
    account: i64,
    event: serde_json::Value,
}

/// The intake queue's batch: each message is an event of an account, taken exactly as
/// `POST /v1/events/batch` takes it ([`Hookline::intake_batch`]: events of one contact in their
/// order, different contacts at once), one batch per account. A message that is not an intake
/// message or whose event is invalid is logged and reported failed, so that SQS moves it to the
/// dead-letter queue after its last receive; a store failure reports the account's messages
/// failed, and they come back (each event is idempotent by its id). Neither holds up the others.
pub async fn handle_intake_batch(engine: &Hookline, event: SqsEvent) -> SqsBatchResponse {
    use hookline_core::app::BatchItem;
    let mut accounts: Vec<(i64, Vec<String>, Vec<serde_json::Value>)> = Vec::new();
    let mut failed = Vec::new();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let parsed = record
            .body
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("the message has no body"))
            .and_then(|b| serde_json::from_str::<IntakeMessage>(b).map_err(anyhow::Error::from));
        match parsed {
            Ok(m) => match accounts.iter_mut().find(|(a, _, _)| *a == m.account) {
                Some((_, ids, events)) => {
                    ids.push(id);
                    events.push(m.event);
                }
                None => accounts.push((m.account, vec![id], vec![m.event])),
            },
            Err(e) => {
                tracing::error!(message_id = %id, error = %e, "not an intake message ({{\"account\", \"event\"}}): left to the dead-letter queue");
                failed.push(id);
            }
        }
    }
    let runs = accounts.into_iter().map(|(account, ids, events)| async move {
        let body = serde_json::json!({ "events": events });
        match engine.intake_batch(account, body).await {
            Ok(items) => ids
                .into_iter()
                .zip(items)
                .filter_map(|(id, item)| match item {
                    BatchItem::Answer(_) => None,
                    BatchItem::Invalid { error, .. } => {
                        tracing::error!(message_id = %id, account, error = %error, "an invalid event: left to the dead-letter queue");
                        Some(id)
                    }
                })
                .collect::<Vec<_>>(),
            Err(e) => {
                tracing::warn!(account, error = %e, "intake failed; SQS will redeliver the account's messages");
                ids
            }
        }
    });
    failed.extend(futures::future::join_all(runs).await.into_iter().flatten());
    let mut response = SqsBatchResponse::default();
    for id in failed {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id;
        response.batch_item_failures.push(failure);
    }
    response
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

/// The table's stream (template: a tumbling window, so that each call names its `shardId`):
/// the batch's changes applied to the statistics counters ([`DynamoStore::apply_stream`]). An
/// error fails the call and Lambda hands the batch over again; records already applied are
/// skipped then. Answers the window's (empty) state.
pub async fn handle_stream(
    store: &DynamoStore,
    payload: &serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let shard = payload
        .get("shardId")
        .and_then(|s| s.as_str())
        .context("a stream batch without shardId (the event source needs a tumbling window)")?;
    let records = payload
        .get("Records")
        .and_then(|r| r.as_array())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let counted = store.apply_stream(shard, records).await?;
    tracing::info!(shard, records = records.len(), counted, "counters updated");
    Ok(serde_json::json!({ "state": {}, "batchItemFailures": [] }))
}

/// `stats-query`'s engine: its counters read up to date from the table's stream
/// ([`crate::stream::CountersUpToDate`]).
pub fn counters_up_to_date(
    engine: Hookline,
    store: DynamoStore,
    streams: aws_sdk_dynamodbstreams::Client,
) -> Hookline {
    let mut ports = engine.ports.clone();
    ports.deliveries = Arc::new(crate::stream::CountersUpToDate::new(store, streams));
    Hookline::new(ports, engine.policy.clone())
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
