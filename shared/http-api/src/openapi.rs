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
        handlers::step_deliveries, handlers::step_secret, handlers::rotate_secret,
        handlers::resend_delivery, handlers::resend_failed, handlers::list_destinations,
        handlers::get_destination, handlers::healthz, handlers::openapi_json,
        crate::console::console, handlers::metrics,
    ),
    modifiers(&Bearer, &Rejections)
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

/// The answers every route may give besides its own, stated once: 401 where a key is needed,
/// 400/413/415 where a JSON body is read, 400 `invalid_path` and 404 where the path carries ids,
/// 503 wherever a store is used.
struct Rejections;

impl Modify for Rejections {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let has_ids = path.contains('{');
            for operation in [&mut item.get, &mut item.put, &mut item.post]
                .into_iter()
                .flatten()
            {
                let responses = &mut operation.responses.responses;
                let mut add = |code: &str, description: &str| {
                    responses
                        .entry(code.to_string())
                        .or_insert_with(|| error(description).into());
                };
                if operation.security.is_some() {
                    add("401", "No key, or a key that is not known or was revoked");
                    add("503", "A store failed: try again");
                }
                if operation.request_body.is_some() {
                    add("400", "Invalid input (the error names the field)");
                    add("413", "The body is too large");
                    add("415", "The body is not JSON");
                }
                if has_ids {
                    add("400", "Invalid input (the error names the field)");
                    add("404", "Unknown, or another account's");
                }
            }
        }
    }
}

pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}

/// The document as served: [`document`] with what utoipa's attributes cannot say, stated from
/// the same sources the server checks with (the field catalogue for the contact snapshot).
pub fn document_json() -> serde_json::Value {
    let mut doc = serde_json::to_value(document()).unwrap_or_default();
    doc["components"]["schemas"]["Contact"] = contact_schema();
    doc["components"]["schemas"]["EventIn"]["properties"]["contact"] =
        serde_json::json!({"$ref": "#/components/schemas/Contact"});
    doc["components"]["schemas"]["ResendFailed"]["properties"]["since"]["pattern"] =
        DATE_TIME.into();
    add_links(&mut doc);
    bound_path_ids(&mut doc);
    doc
}

/// Every path parameter is an id of 1 to [`crate::extract::MAX_PATH_ID`] characters.
fn bound_path_ids(doc: &mut serde_json::Value) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for item in paths.values_mut() {
        for operation in item
            .as_object_mut()
            .into_iter()
            .flat_map(|o| o.values_mut())
        {
            let params = operation
                .get_mut("parameters")
                .and_then(|p| p.as_array_mut());
            for param in params.into_iter().flatten() {
                if param["in"] == "path" {
                    param["schema"]["minLength"] = 1.into();
                    param["schema"]["maxLength"] = crate::extract::MAX_PATH_ID.into();
                }
            }
        }
    }
}

/// Links from the calls that create a scenario to every call that uses its id (the stateful
/// phase of a fuzzer follows them). Written here: utoipa 5 names a link's `operationId`
/// `operation_id` when it serializes.
fn add_links(doc: &mut serde_json::Value) {
    const USES_ID: &[&str] = &[
        "get_scenario",
        "update_scenario",
        "activate",
        "archive",
        "duplicate",
        "scenario_stats",
    ];
    const USES_STEP: &[&str] = &[
        "step_stats",
        "step_deliveries",
        "step_secret",
        "rotate_secret",
        "resend_failed",
    ];
    let mut links: serde_json::Map<String, serde_json::Value> = USES_ID
        .iter()
        .map(|op| {
            let link = serde_json::json!({"operationId": op, "parameters": {"id": "$response.body#/id"},
                                          "description": "the scenario just made"});
            (op.to_string(), link)
        })
        .collect();
    for op in USES_STEP {
        let link = serde_json::json!({"operationId": op,
            "parameters": {"id": "$response.body#/id", "step": "$response.body#/steps/0/id"},
            "description": "the first step of the scenario just made"});
        links.insert(op.to_string(), link);
    }
    for path in ["/v1/scenarios", "/v1/scenarios/{id}/duplicate"] {
        if let Some(created) = doc["paths"][path]["post"]["responses"]["201"].as_object_mut() {
            created.insert("links".into(), serde_json::Value::Object(links.clone()));
        }
    }
}

/// SPEC §2 as the server checks it (`Contact::parse`): `id` an integer and `email` an address,
/// required; dates RFC 3339 date-times or `YYYY-MM-DD`; `consent`, `stats` and
/// `customFields` objects, `groups` an array; any other key kept as it is.
fn contact_schema() -> serde_json::Value {
    use hookline_core::domain::catalogue::{FIELDS, Source};
    use serde_json::{Map, Value, json};
    let date = json!({"type": ["string", "null"], "anyOf": [
        {"type": "null"},
        {"type": "string", "format": "date-time", "pattern": DATE_TIME},
        {"type": "string", "format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}
    ]});
    let mut top = Map::new();
    let mut consent = Map::new();
    let mut stats = Map::new();
    for field in FIELDS.iter().filter(|f| f.is_date) {
        match field.source {
            Source::Top(k) => top.insert(k.to_string(), date.clone()),
            Source::Consent(k) => consent.insert(k.to_string(), date.clone()),
            Source::Stats(k) => stats.insert(k.to_string(), date.clone()),
        };
    }
    let max = hookline_core::domain::contact::MAX_ID;
    top.insert(
        "id".into(),
        json!({"type": "integer", "minimum": -max, "maximum": max}),
    );
    top.insert(
        "email".into(),
        json!({"type": "string", "maxLength": 320,
               "pattern": format!("^[^{WHITE_SPACE}]+@[^{WHITE_SPACE}@]+$")}),
    );
    top.insert(
        "consent".into(),
        json!({"type": ["object", "null"], "properties": Value::Object(consent)}),
    );
    top.insert(
        "stats".into(),
        json!({"type": ["object", "null"], "properties": Value::Object(stats)}),
    );
    top.insert("customFields".into(), json!({"type": ["object", "null"]}));
    top.insert("groups".into(), json!({"type": ["array", "null"]}));
    json!({
        "type": "object",
        "description": "A contact snapshot (SPEC §2).",
        "required": ["id", "email"],
        "properties": Value::Object(top)
    })
}

/// Unicode White_Space, as Rust's `char::is_whitespace` (an email address has none).
const WHITE_SPACE: &str =
    "\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";

/// An RFC 3339 date-time as the server parses it (jiff): date, `T`, time, optional fraction,
/// `Z` or an offset.
const DATE_TIME: &str = "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]{1,9})?([Zz]|[+-](0[0-9]|1[0-9]|2[0-3]):[0-5][0-9])$";
