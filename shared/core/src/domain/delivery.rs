//! Deliveries and their attempts (SPEC §1, §6).

use serde::{Deserialize, Serialize};

use jiff::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Pending,
    Accepted,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Accepted => "accepted",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        match s {
            "pending" => Some(DeliveryStatus::Pending),
            "accepted" => Some(DeliveryStatus::Accepted),
            "failed" => Some(DeliveryStatus::Failed),
            _ => None,
        }
    }
}

/// One HTTP POST of a delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub at: Timestamp,
    /// The receiver's status code, when it answered.
    pub status: Option<u16>,
    /// What went wrong, for a person (`None` when accepted).
    pub error: Option<String>,
    pub duration_ms: u64,
    /// The first 1 KiB of the response body.
    pub response_snippet: Option<String>,
}

/// Where the contact goes once the first attempt has been made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Handoff {
    pub enrollment_id: String,
    pub next_step: Option<String>,
    /// The enrollment sequence number the hand-back advances to.
    pub seq: u64,
}

/// One webhook request to deliver, with its frozen payload and its attempts.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: String,
    pub account: i64,
    pub scenario_id: String,
    pub step_id: String,
    pub contact_id: i64,
    pub handoff: Handoff,
    pub url: String,
    /// The step's custom headers (values may be secrets: never logged).
    pub headers: Vec<(String, String)>,
    /// The exact bytes every attempt sends.
    pub payload: String,
    pub status: DeliveryStatus,
    pub created_at: Timestamp,
    pub deadline: Timestamp,
    pub next_attempt_at: Option<Timestamp>,
    pub attempts: Vec<Attempt>,
}

/// What the webhook sender reports of one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptOutcome {
    pub status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: u64,
    pub response_snippet: Option<String>,
    /// `Retry-After` of a 429 or 503 answer.
    pub retry_after: Option<std::time::Duration>,
}

impl AttemptOutcome {
    /// Accepted = the receiver answered 2xx.
    pub fn accepted(&self) -> bool {
        matches!(self.status, Some(200..=299))
    }

    pub fn into_attempt(self, at: Timestamp) -> Attempt {
        Attempt {
            at,
            status: self.status,
            error: self.error,
            duration_ms: self.duration_ms,
            response_snippet: self.response_snippet,
        }
    }
}
