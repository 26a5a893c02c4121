//! Deliveries and their attempts (SPEC §1, §6).

use serde::{Deserialize, Serialize};

use jiff::Timestamp;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Not accepted yet, still retried.
    Pending,
    /// The receiver answered 2xx.
    Accepted,
    /// Not accepted by its deadline: never tried again (but for a resend).
    Failed,
}

impl DeliveryStatus {
    /// The status as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Accepted => "accepted",
            DeliveryStatus::Failed => "failed",
        }
    }

    /// The status written `s`, if it is one.
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// When it started.
    pub at: Timestamp,
    /// The receiver's status code, when it answered.
    pub status: Option<u16>,
    /// What went wrong, for a person (`None` when accepted).
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: u64,
    /// The first 1 KiB of the response body.
    pub response_snippet: Option<String>,
}

/// Where the contact goes once the first attempt has been made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handoff {
    /// The enrollment that moves on.
    pub enrollment_id: String,
    /// The step after the webhook; `None`: the end.
    pub next_step: Option<String>,
    /// The enrollment sequence number the hand-back advances to.
    pub seq: u64,
}

/// One webhook request to deliver, with its frozen payload and its attempts. (Serialized only
/// into the message of its first attempt on the queued path: [`crate::ports::Task`].)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The delivery id (`dlv_…`).
    pub id: String,
    /// The account.
    pub account: i64,
    /// The scenario.
    pub scenario_id: String,
    /// The webhook step.
    pub step_id: String,
    /// The contact it is about.
    pub contact_id: i64,
    /// Where the contact goes after the first attempt.
    pub handoff: Handoff,
    /// The target URL.
    pub url: String,
    /// The step's custom headers (values may be secrets: never logged).
    pub headers: Vec<(String, String)>,
    /// The exact bytes every attempt sends.
    pub payload: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// When it was created (the payload's `timestamp`).
    pub created_at: Timestamp,
    /// Its creation plus the retry window: no attempt is scheduled after it.
    pub deadline: Timestamp,
    /// When it is tried next, while pending.
    pub next_attempt_at: Option<Timestamp>,
    /// How many attempts were made (the compare-and-set of every attempt's record).
    pub attempt_count: u32,
    /// The attempts kept in full: the first and the last [`KEPT_ATTEMPTS`]` - 1` (SPEC §6).
    pub attempts: Vec<Attempt>,
}

/// Attempts a delivery keeps in full: the first and the last 19. No record grows without bound.
pub const KEPT_ATTEMPTS: usize = 20;
/// Longest error text kept on an attempt, in bytes.
pub const MAX_ERROR_TEXT: usize = 1024;

impl Delivery {
    /// Why this delivery cannot be sent: a payload that would have been past the bound
    /// (SPEC §5) is never rendered, and its delivery keeps the error text in its place (a
    /// rendered payload is a JSON object, so it always starts with `{`). Such a delivery fails
    /// at its first turn, without a request.
    pub fn unsendable(&self) -> Option<&str> {
        (!self.payload.starts_with('{')).then_some(self.payload.as_str())
    }

    /// The attempts to keep once `attempt` is added: the first and the last 19.
    pub fn kept_with(&self, attempt: &Attempt) -> Vec<Attempt> {
        keep(self.attempts.iter().chain([attempt]).cloned().collect())
    }
}

/// The first attempt and the last [`KEPT_ATTEMPTS`]` - 1`.
pub fn keep(mut attempts: Vec<Attempt>) -> Vec<Attempt> {
    if attempts.len() > KEPT_ATTEMPTS {
        attempts.drain(1..attempts.len() - (KEPT_ATTEMPTS - 1));
    }
    attempts
}

/// `text` cut to at most `max` bytes, on a character boundary, marked with `…` when cut.
pub fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max.saturating_sub('…'.len_utf8());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// What the webhook sender reports of one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptOutcome {
    /// The receiver's status code, when it answered.
    pub status: Option<u16>,
    /// What went wrong, for a person (`None` when accepted).
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: u64,
    /// The first 1 KiB of the response body.
    pub response_snippet: Option<String>,
    /// `Retry-After` of a 429 or 503 answer.
    pub retry_after: Option<std::time::Duration>,
}

impl AttemptOutcome {
    /// Accepted = the receiver answered 2xx.
    pub fn accepted(&self) -> bool {
        matches!(self.status, Some(200..=299))
    }

    /// The attempt to record, started at `at` (its error text cut to 1 KiB).
    pub fn into_attempt(self, at: Timestamp) -> Attempt {
        Attempt {
            at,
            status: self.status,
            error: self.error.map(|e| cut(e, MAX_ERROR_TEXT)),
            duration_ms: self.duration_ms,
            response_snippet: self.response_snippet,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(n: u16) -> Attempt {
        Attempt {
            at: Timestamp::from_second(i64::from(n)).unwrap(),
            status: Some(n),
            error: None,
            duration_ms: 1,
            response_snippet: None,
        }
    }

    #[test]
    fn the_first_attempt_and_the_last_19_are_kept() {
        let all: Vec<Attempt> = (1..=25).map(attempt).collect();
        let kept = keep(all.clone());
        assert_eq!(kept.len(), KEPT_ATTEMPTS);
        assert_eq!(kept[0], all[0]);
        assert_eq!(kept[1..], all[6..]);
        assert_eq!(keep(all[..20].to_vec()), all[..20].to_vec());
    }

    #[test]
    fn error_texts_are_cut_to_1_kib_on_a_character_boundary() {
        let long = format!(
            "HTTP 302 Found: redirects are not followed (to {})",
            "é".repeat(2000)
        );
        let e = AttemptOutcome {
            status: Some(302),
            error: Some(long),
            duration_ms: 1,
            response_snippet: None,
            retry_after: None,
        }
        .into_attempt(Timestamp::UNIX_EPOCH)
        .error
        .unwrap();
        assert!(e.len() <= MAX_ERROR_TEXT && e.ends_with('…'), "{}", e.len());
        assert_eq!(cut("short".into(), MAX_ERROR_TEXT), "short");
    }
}
