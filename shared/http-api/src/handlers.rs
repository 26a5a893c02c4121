//! One handler per route; each is a thin call into the engine. The `#[utoipa::path]`
//! annotations are the source of `GET /v1/openapi.json`.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use hookline_core::app::views::{
    DeliveryView, ListView, PlaceholderView, ScenarioView, StepStatsView, TestAnswer,
    placeholders as catalogue,
};
use hookline_core::app::{
    BatchItem, DestinationView, ResendFailed, ResendQueued, SecretView, TestRequest,
};
use hookline_core::domain::event::{EventIn, IntakeAnswer};
use hookline_core::domain::scenario::ScenarioDef;
use serde::Serialize;
use utoipa::ToSchema;

use crate::errors::{ErrorBody, ErrorDetail};
use crate::extract::{Account, Ids, JsonBody, param, query};
use crate::{ApiError, ApiState, MAX_BATCH_BODY};

type ApiResult<T> = Result<T, ApiError>;

#[utoipa::path(post, path = "/v1/events", tag = "intake", request_body = EventIn,
    responses((status = 202, body = IntakeAnswer), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn post_event(
    State(s): State<ApiState>,
    Account(account): Account,
    JsonBody(body): JsonBody,
) -> ApiResult<impl IntoResponse> {
    let answer = s.engine.intake(account, body).await?;
    Ok((StatusCode::ACCEPTED, Json(answer)))
}

/// The body of `POST /v1/events/batch`.
#[derive(ToSchema, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct BatchIn {
    /// Up to 100 events, each as `POST /v1/events` takes it (`EventIn`), each at most 256 KiB
    /// as compact JSON text (the limit of an event sent alone). An invalid one is answered in
    /// its item, not refused with the batch, so any value is taken here; a larger one gets an
    /// error item with the code `event_too_large`.
    #[schema(max_items = 100, value_type = Vec<serde_json::Value>)]
    events: Vec<serde_json::Value>,
}

/// One item of a batch answer: the event's intake answer, or why it was refused (its
/// `error.code` is `event_too_large` for an event past 256 KiB).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum BatchItemView {
    Answer(IntakeAnswer),
    #[serde(rename_all = "camelCase")]
    Refused {
        event_id: Option<String>,
        error: ErrorDetail,
    },
}

#[derive(Serialize, ToSchema)]
pub struct BatchAnswer {
    items: Vec<BatchItemView>,
}

#[utoipa::path(post, path = "/v1/events/batch", tag = "intake", request_body = BatchIn,
    responses((status = 200, body = BatchAnswer), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn post_events_batch(
    State(s): State<ApiState>,
    Account(account): Account,
    JsonBody(body): JsonBody<MAX_BATCH_BODY>,
) -> ApiResult<Json<BatchAnswer>> {
    let items = s.engine.intake_batch(account, body).await?;
    let items = items
        .into_iter()
        .map(|item| match item {
            BatchItem::Answer(answer) => BatchItemView::Answer(answer),
            BatchItem::Invalid { event_id, error } => BatchItemView::Refused {
                event_id,
                error: ErrorDetail {
                    code: error.code.to_string(),
                    message: error.message,
                    field: error.field,
                },
            },
        })
        .collect();
    Ok(Json(BatchAnswer { items }))
}

#[utoipa::path(post, path = "/v1/scenarios", tag = "scenarios", request_body = ScenarioDef,
    responses((status = 201, body = ScenarioView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_scenario(
    State(s): State<ApiState>,
    Account(account): Account,
    JsonBody(body): JsonBody,
) -> ApiResult<impl IntoResponse> {
    let view = s.engine.create_scenario(account, body).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[utoipa::path(get, path = "/v1/scenarios", tag = "scenarios",
    params(("limit" = Option<u32>, Query, description = "1 to 100, default 50", minimum = 1, maximum = 100),
            ("cursor" = Option<String>, Query, description = "the `nextCursor` of a previous page", pattern = "^scn_")),
    responses((status = 200, body = ListView<ScenarioView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_scenarios(
    State(s): State<ApiState>,
    Account(account): Account,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<ListView<ScenarioView>>> {
    let q = query(raw.as_deref());
    Ok(Json(
        s.engine
            .list_scenarios(account, param(&q, "cursor"), param(&q, "limit"))
            .await?,
    ))
}

#[utoipa::path(get, path = "/v1/scenarios/{id}", tag = "scenarios", params(("id" = String, Path)),
    responses((status = 200, body = ScenarioView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_scenario(
    State(s): State<ApiState>,
    Account(account): Account,
    Ids(id): Ids<String>,
) -> ApiResult<Json<ScenarioView>> {
    Ok(Json(s.engine.get_scenario(account, &id).await?))
}

#[utoipa::path(put, path = "/v1/scenarios/{id}", tag = "scenarios", params(("id" = String, Path)), request_body = ScenarioDef,
    responses((status = 200, body = ScenarioView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_scenario(
    State(s): State<ApiState>,
    Account(account): Account,
    Ids(id): Ids<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<ScenarioView>> {
    Ok(Json(s.engine.update_scenario(account, &id, body).await?))
}

#[utoipa::path(post, path = "/v1/scenarios/{id}/activate", tag = "scenarios", params(("id" = String, Path)),
    responses((status = 200, body = ScenarioView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn activate(
    State(s): State<ApiState>,
    Account(account): Account,
    Ids(id): Ids<String>,
) -> ApiResult<Json<ScenarioView>> {
    Ok(Json(s.engine.activate_scenario(account, &id).await?))
}

#[utoipa::path(post, path = "/v1/scenarios/{id}/archive", tag = "scenarios", params(("id" = String, Path)),
    responses((status = 200, body = ScenarioView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn archive(
    State(s): State<ApiState>,
    Account(account): Account,
    Ids(id): Ids<String>,
) -> ApiResult<Json<ScenarioView>> {
    Ok(Json(s.engine.archive_scenario(account, &id).await?))
}

#[utoipa::path(post, path = "/v1/scenarios/{id}/duplicate", tag = "scenarios", params(("id" = String, Path)),
    responses((status = 201, body = ScenarioView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn duplicate(
    State(s): State<ApiState>,
    Account(account): Account,
    Ids(id): Ids<String>,
) -> ApiResult<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(s.engine.duplicate_scenario(account, &id).await?),
    ))
}

#[utoipa::path(post, path = "/v1/webhooks/test", tag = "webhooks", request_body = TestRequest,
    responses((status = 200, body = TestAnswer), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub async fn test_webhook(
    State(s): State<ApiState>,
    Account(account): Account,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<TestAnswer>> {
    Ok(Json(s.engine.test_webhook(account, body).await?))
}

#[derive(Serialize, ToSchema)]
pub struct Placeholders {
    pub items: Vec<PlaceholderView>,
}

#[utoipa::path(get, path = "/v1/placeholders", tag = "webhooks", responses((status = 200, body = Placeholders)), security(("bearer" = [])))]
pub async fn placeholders(_account: Account) -> Json<Placeholders> {
    Json(Placeholders { items: catalogue() })
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScenarioStats {
    pub items: Vec<StepStatsView>,
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/scenarios/{id}/stats", tag = "statistics", params(("id" = String, Path)),
    responses((status = 200, body = ScenarioStats), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn scenario_stats(
    State(s): State<ApiState>,
    Account(account): Account,
    Ids(id): Ids<String>,
) -> ApiResult<Json<ScenarioStats>> {
    let items = s.engine.scenario_stats(account, &id).await?;
    Ok(Json(ScenarioStats {
        items,
        next_cursor: None,
    }))
}

#[utoipa::path(get, path = "/v1/scenarios/{id}/steps/{step}/stats", tag = "statistics",
    params(("id" = String, Path), ("step" = String, Path)),
    responses((status = 200, body = StepStatsView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn step_stats(
    State(s): State<ApiState>,
    Account(account): Account,
    Ids((id, step)): Ids<(String, String)>,
) -> ApiResult<Json<StepStatsView>> {
    Ok(Json(s.engine.step_stats(account, &id, &step).await?))
}

#[utoipa::path(get, path = "/v1/scenarios/{id}/steps/{step}/deliveries", tag = "statistics",
    params(("id" = String, Path), ("step" = String, Path), ("status" = Option<String>, Query, description = "pending, accepted or failed"),
           ("limit" = Option<u32>, Query, description = "1 to 100, default 50", minimum = 1, maximum = 100),
           ("cursor" = Option<String>, Query, description = "the `nextCursor` of a previous page", pattern = "^[0-9]+[.]dlv_")),
    responses((status = 200, body = ListView<DeliveryView>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn step_deliveries(
    State(s): State<ApiState>,
    Account(account): Account,
    Ids((id, step)): Ids<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<ListView<DeliveryView>>> {
    let q = query(raw.as_deref());
    let list = s
        .engine
        .step_deliveries(
            account,
            &id,
            &step,
            param(&q, "status"),
            param(&q, "limit"),
            param(&q, "cursor"),
        )
        .await?;
    Ok(Json(list))
}

#[utoipa::path(get, path = "/v1/destinations", tag = "destinations",
    params(("status" = Option<String>, Query, description = "healthy, throttled or failing", pattern = "^(healthy|throttled|failing)?$"),
           ("limit" = Option<u32>, Query, description = "1 to 100, default 50", minimum = 1, maximum = 100),
           ("cursor" = Option<String>, Query, description = "the `nextCursor` of a previous page", pattern = "^dst_[0-9a-f]{16}$")),
    responses((status = 200, body = ListView<DestinationView>), (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_destinations(
    State(s): State<ApiState>,
    Account(account): Account,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<ListView<DestinationView>>> {
    let q = query(raw.as_deref());
    let list = s
        .engine
        .list_destinations(
            account,
            param(&q, "status"),
            param(&q, "limit"),
            param(&q, "cursor"),
        )
        .await?;
    Ok(Json(list))
}

#[utoipa::path(get, path = "/v1/destinations/{id}", tag = "destinations",
    params(("id" = String, Path, description = "`dst_` and 16 hex digits")),
    responses((status = 200, body = DestinationView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_destination(
    State(s): State<ApiState>,
    Account(account): Account,
    Ids(id): Ids<String>,
) -> ApiResult<Json<DestinationView>> {
    Ok(Json(s.engine.destination(account, &id).await?))
}

#[utoipa::path(get, path = "/v1/scenarios/{id}/steps/{step}/secret", tag = "webhooks",
    params(("id" = String, Path), ("step" = String, Path)),
    responses((status = 200, body = SecretView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn step_secret(
    State(s): State<ApiState>,
    Account(account): Account,
    Ids((id, step)): Ids<(String, String)>,
) -> ApiResult<Json<SecretView>> {
    Ok(Json(s.engine.step_secret(account, &id, &step).await?))
}

#[utoipa::path(post, path = "/v1/scenarios/{id}/steps/{step}/secret/rotate", tag = "webhooks",
    params(("id" = String, Path), ("step" = String, Path)),
    responses((status = 200, body = SecretView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn rotate_secret(
    State(s): State<ApiState>,
    Account(account): Account,
    Ids((id, step)): Ids<(String, String)>,
) -> ApiResult<Json<SecretView>> {
    Ok(Json(s.engine.rotate_secret(account, &id, &step).await?))
}

#[utoipa::path(post, path = "/v1/scenarios/{id}/steps/{step}/deliveries/{delivery}/resend", tag = "statistics",
    params(("id" = String, Path), ("step" = String, Path), ("delivery" = String, Path)),
    responses((status = 202, body = DeliveryView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn resend_delivery(
    State(s): State<ApiState>,
    Account(account): Account,
    Ids((id, step, delivery)): Ids<(String, String, String)>,
) -> ApiResult<impl IntoResponse> {
    let view = s
        .engine
        .resend_delivery(account, &id, &step, &delivery)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(view)))
}

#[utoipa::path(post, path = "/v1/scenarios/{id}/steps/{step}/resend-failed", tag = "statistics",
    params(("id" = String, Path), ("step" = String, Path)), request_body = ResendFailed,
    responses((status = 202, body = ResendQueued), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn resend_failed(
    State(s): State<ApiState>,
    Account(account): Account,
    Ids((id, step)): Ids<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<impl IntoResponse> {
    let queued = s.engine.resend_failed(account, &id, &step, body).await?;
    Ok((StatusCode::ACCEPTED, Json(queued)))
}

#[utoipa::path(get, path = "/healthz", tag = "meta", responses((status = 200, description = "alive")))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

#[utoipa::path(get, path = "/v1/openapi.json", tag = "meta", responses((status = 200, description = "this description")))]
pub async fn openapi_json() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        crate::openapi::SERVED,
    )
}

/// `GET /metrics` is local mode's (`hookline serve` adds the route, over its database): only
/// described here, so that the document lists it. API Gateway does not route it.
#[utoipa::path(get, path = "/metrics", tag = "meta",
    responses((status = 200, description = "the measures of SPEC §11 in the Prometheus text format (local mode only; no key)",
               content_type = "text/plain", body = String)))]
#[allow(dead_code)]
pub fn metrics() {}

pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method",
    )
}
