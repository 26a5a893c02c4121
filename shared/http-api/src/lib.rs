//! The HTTP API (SPEC §8) as axum routes over [`Hookline`].
//!
//! The routes come in three parts so that each Lambda function mounts only its own:
//! [`intake_routes`] (`trigger-intake`), [`scenario_routes`] (`scenario-api`) and
//! [`stats_routes`] (`stats-query`); [`router`] is all of them, as local mode serves it.

mod console;
mod errors;
mod extract;
mod handlers;
pub mod openapi;

use axum::Router;
use axum::routing::{get, post};
use hookline_core::Hookline;

pub use errors::ApiError;

/// Requests larger than this are answered 413.
pub const MAX_BODY: usize = 256 * 1024;
/// `POST /v1/events/batch` takes up to 1 MiB.
pub const MAX_BATCH_BODY: usize = 1024 * 1024;

#[derive(Clone)]
pub struct ApiState {
    pub engine: Hookline,
}

fn finish(routes: Router<ApiState>, engine: Hookline) -> Router {
    routes
        .route("/healthz", get(handlers::healthz))
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .with_state(ApiState { engine })
}

fn intake() -> Router<ApiState> {
    Router::new()
        .route("/v1/events", post(handlers::post_event))
        .route("/v1/events/batch", post(handlers::post_events_batch))
}

/// `GET /v1/openapi.json` is here, not in every function: the template routes it to
/// scenario-api only, and the document (utoipa) is ~0.35 MB of code in a binary. So is the
/// console (`GET /`).
fn scenarios() -> Router<ApiState> {
    Router::new()
        .route("/", get(console::console))
        .route("/v1/openapi.json", get(handlers::openapi_json))
        .route(
            "/v1/scenarios",
            post(handlers::create_scenario).get(handlers::list_scenarios),
        )
        .route(
            "/v1/scenarios/{id}",
            get(handlers::get_scenario).put(handlers::update_scenario),
        )
        .route("/v1/scenarios/{id}/activate", post(handlers::activate))
        .route("/v1/scenarios/{id}/archive", post(handlers::archive))
        .route("/v1/scenarios/{id}/duplicate", post(handlers::duplicate))
        .route("/v1/webhooks/test", post(handlers::test_webhook))
        .route("/v1/placeholders", get(handlers::placeholders))
        .route(
            "/v1/scenarios/{id}/steps/{step}/secret",
            get(handlers::step_secret),
        )
        .route(
            "/v1/scenarios/{id}/steps/{step}/secret/rotate",
            post(handlers::rotate_secret),
        )
        .route(
            "/v1/scenarios/{id}/steps/{step}/deliveries/{delivery}/resend",
            post(handlers::resend_delivery),
        )
        .route(
            "/v1/scenarios/{id}/steps/{step}/resend-failed",
            post(handlers::resend_failed),
        )
}

fn stats() -> Router<ApiState> {
    Router::new()
        .route("/v1/scenarios/{id}/stats", get(handlers::scenario_stats))
        .route(
            "/v1/scenarios/{id}/steps/{step}/stats",
            get(handlers::step_stats),
        )
        .route(
            "/v1/scenarios/{id}/steps/{step}/deliveries",
            get(handlers::step_deliveries),
        )
        .route("/v1/destinations", get(handlers::list_destinations))
        .route("/v1/destinations/{id}", get(handlers::get_destination))
}

/// `POST /v1/events` and `POST /v1/events/batch` only.
pub fn intake_routes(engine: Hookline) -> Router {
    finish(intake(), engine)
}

/// The console, scenarios, lifecycle, the Test button, placeholders, signing secrets and resends.
pub fn scenario_routes(engine: Hookline) -> Router {
    finish(scenarios(), engine)
}

/// Statistics, deliveries and the destinations' health.
pub fn stats_routes(engine: Hookline) -> Router {
    finish(stats(), engine)
}

/// The whole API.
pub fn router(engine: Hookline) -> Router {
    finish(intake().merge(scenarios()).merge(stats()), engine)
}
