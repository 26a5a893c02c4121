//! `GET /metrics` (SPEC §11): the measures of `hookline_core::metrics` in the Prometheus text
//! format, with the gauges read from the database at each scrape. No key (like `/healthz`); it
//! is served on the API's own address.

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use hookline_core::metrics as m;
use hookline_core::ports::Clock;
use hookline_local::SqliteStore;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed on first use (one per process: the `metrics` facade has
/// one global recorder; `hookline serve` runs one server).
pub fn handle() -> anyhow::Result<PrometheusHandle> {
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(m::ATTEMPT_DURATION.to_string()),
            m::DURATION_BUCKETS,
        )?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)
        .map_err(|e| anyhow::anyhow!("installing the metrics recorder: {e}"))?;
    m::describe();
    let _ = HANDLE.set(handle.clone());
    Ok(handle)
}

#[derive(Clone)]
struct Scrape {
    handle: PrometheusHandle,
    store: SqliteStore,
    clock: Arc<dyn Clock>,
}

/// The `/metrics` route over this server's database.
pub fn routes(handle: PrometheusHandle, store: SqliteStore, clock: Arc<dyn Clock>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(Scrape {
            handle,
            store,
            clock,
        })
}

async fn scrape(State(s): State<Scrape>) -> impl IntoResponse {
    match s.store.gauges(s.clock.now()).await {
        Ok(g) => {
            m::set_deliveries_pending(g.deliveries_pending);
            m::set_timers_due("retry", g.retries_due);
            m::set_timers_due("wait", g.waits_due);
            m::set_timers_due("occurrence", g.occurrences_due);
        }
        // the counters still answer; the gauges keep their last values
        Err(e) => tracing::warn!(error = %e, "metrics: the gauges could not be read"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.handle.render(),
    )
}
