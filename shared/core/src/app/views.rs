//! What the API answers: resources as JSON (camelCase), built from domain records.

use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::delivery::{Attempt, Delivery, DeliveryStatus};
use crate::domain::scenario::{ScenarioDef, ScenarioRecord, ScenarioStatus};
use crate::domain::time::rfc3339_millis;

/// A scenario as submitted, plus `id`, `status`, `createdAt`, `updatedAt`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScenarioView {
    /// The scenario id (`scn_…`).
    pub id: String,
    /// `draft`, `active` or `archived`.
    pub status: ScenarioStatus,
    /// The definition as submitted.
    #[serde(flatten)]
    pub def: ScenarioDef,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it was last changed (RFC 3339).
    pub updated_at: String,
}

impl From<ScenarioRecord> for ScenarioView {
    fn from(r: ScenarioRecord) -> Self {
        ScenarioView {
            id: r.id,
            status: r.status,
            def: r.def,
            created_at: rfc3339_millis(r.created_at),
            updated_at: rfc3339_millis(r.updated_at),
        }
    }
}

/// `{"items": [...], "nextCursor": ...}`
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListView<T: ToSchema> {
    /// The page's items.
    pub items: Vec<T>,
    /// The cursor of the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// One step's statistics. Webhook steps also carry `accepted`, `pending` and `failed`,
/// with `accepted + pending + failed == passes`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepStatsView {
    /// The step.
    pub step_id: String,
    /// The step's type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Passes of the step.
    pub passes: u64,
    /// Distinct contacts that passed it.
    pub unique_contacts: u64,
    /// Deliveries accepted (webhook steps).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted: Option<u64>,
    /// Deliveries still being tried (webhook steps).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<u64>,
    /// Deliveries failed for good (webhook steps).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<u64>,
}

/// One attempt of a delivery.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptView {
    /// When it started (RFC 3339).
    pub at: String,
    /// The receiver's status code, if it answered.
    pub status: Option<u16>,
    /// What went wrong, if it was not accepted.
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: u64,
    /// The first 1 KiB of the response body.
    pub response_snippet: Option<String>,
}

/// A delivery as the deliveries list shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    /// The delivery id (`dlv_…`).
    pub id: String,
    /// The contact it is for.
    pub contact_id: i64,
    /// `pending`, `accepted` or `failed`.
    pub status: DeliveryStatus,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When its retries end (RFC 3339).
    pub deadline: String,
    /// When it is tried next, while pending.
    pub next_attempt_at: Option<String>,
    /// How many attempts were made (the first and the last 19 are listed in `attempts`).
    pub attempt_count: u32,
    /// Its first attempt and its last 19.
    pub attempts: Vec<AttemptView>,
}

impl From<Attempt> for AttemptView {
    fn from(a: Attempt) -> Self {
        AttemptView {
            at: rfc3339_millis(a.at),
            status: a.status,
            error: a.error,
            duration_ms: a.duration_ms,
            response_snippet: a.response_snippet,
        }
    }
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        DeliveryView {
            id: d.id,
            contact_id: d.contact_id,
            status: d.status,
            created_at: rfc3339_millis(d.created_at),
            deadline: rfc3339_millis(d.deadline),
            next_attempt_at: d.next_attempt_at.map(rfc3339_millis),
            attempt_count: d.attempt_count,
            attempts: d.attempts.into_iter().map(AttemptView::from).collect(),
        }
    }
}

/// The Test button's answer.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestAnswer {
    /// The receiver answered 2xx.
    pub accepted: bool,
    /// The receiver's status code, if it answered.
    pub status: Option<u16>,
    /// What went wrong, if it was not accepted.
    pub error: Option<String>,
    /// How long the request took.
    pub duration_ms: u64,
}

/// One catalogue entry of `GET /v1/placeholders`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlaceholderView {
    /// The catalogue key (`firstname`, `consentType`, …).
    pub key: &'static str,
    /// Its label, for a person.
    pub label: &'static str,
    /// Its group: contact, consent or statistics.
    pub group: &'static str,
}

/// The field catalogue, as `GET /v1/placeholders` lists it.
pub fn placeholders() -> Vec<PlaceholderView> {
    crate::domain::catalogue::FIELDS
        .iter()
        .map(|f| PlaceholderView {
            key: f.key,
            label: f.label,
            group: f.group,
        })
        .collect()
}
