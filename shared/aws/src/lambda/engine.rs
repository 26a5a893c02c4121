//! The engine's wiring: the SDK clients, the ports over DynamoDB, SQS and Scheduler, and a
//! function's cold start.

use std::sync::Arc;

use hookline_core::Hookline;
use hookline_core::ports::{Clock, Pipeline, Ports, SystemClock, UlidIds};
use hookline_sender::ReqwestSender;

use super::Settings;
use crate::{DynamoStore, SqsQueue};

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
pub(super) async fn cold_start() -> anyhow::Result<(aws_config::SdkConfig, Settings)> {
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
