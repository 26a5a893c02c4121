//! `GET /v1/openapi.json`, generated from the handlers' annotations and the types' schemas.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::handlers;

#[derive(OpenApi)]
#[openapi(
    info(title = "Hookline", description = "The Send a webhook engine of a marketing-automation platform."),
    paths(
        handlers::post_event, handlers::post_events_batch, handlers::create_scenario, handlers::list_scenarios, handlers::get_scenario,
        handlers::update_scenario, handlers::activate, handlers::archive, handlers::duplicate,
        handlers::test_webhook, handlers::placeholders, handlers::scenario_stats, handlers::step_stats,
        handlers::step_deliveries, handlers::healthz, handlers::openapi_json,
    ),
    modifiers(&Bearer)
)]
struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}
