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
    pub id: String,
    pub status: ScenarioStatus,
    #[serde(flatten)]
    pub def: ScenarioDef,
    pub created_at: String,
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
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// One step's statistics. Webhook steps also carry `accepted`, `pending` and `failed`,
/// with `accepted + pending + failed == passes`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepStatsView {
    pub step_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub passes: u64,
    pub unique_contacts: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<u64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptView {
    pub at: String,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: u64,
    pub response_snippet: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    pub id: String,
    pub contact_id: i64,
    pub status: DeliveryStatus,
    pub created_at: String,
    pub deadline: String,
    pub next_attempt_at: Option<String>,
    /// How many attempts were made (the first and the last 19 are listed in `attempts`).
    pub attempt_count: u32,
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
    pub accepted: bool,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// One catalogue entry of `GET /v1/placeholders`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlaceholderView {
    pub key: &'static str,
    pub label: &'static str,
    pub group: &'static str,
}

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
