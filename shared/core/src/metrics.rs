//! The measures of SPEC §11, written through the `metrics` facade: the runtime installs the
//! recorder (local mode: Prometheus text at `GET /metrics`; AWS: CloudWatch embedded metric
//! format lines). Without a recorder every call here costs next to nothing.
//!
//! Labels carry only the fixed values below: never a contact, a URL, a key or an account.

use crate::domain::delivery::{AttemptOutcome, DeliveryStatus};

/// Events taken by intake (`POST /v1/events`, each valid event of a batch, the intake queue).
pub const EVENTS_TAKEN: &str = "hookline_events_taken_total";
/// Webhooks settled, by `outcome`: `accepted` or `failed` (a resent delivery that is then
/// accepted counts once more, as `accepted`).
pub const WEBHOOKS: &str = "hookline_webhooks_total";
/// Attempts made, by `result`: `2xx`, `3xx`, `4xx`, `429`, `5xx`, `timeout`, `connection`.
pub const ATTEMPTS: &str = "hookline_attempts_total";
/// Attempt durations, in seconds (histogram).
pub const ATTEMPT_DURATION: &str = "hookline_attempt_duration_seconds";
/// Deliveries pending now (gauge, set by the runtime).
pub const DELIVERIES_PENDING: &str = "hookline_deliveries_pending";
/// Timers due now and not yet run, by `kind`: `retry`, `wait`, `occurrence` (gauge, set by
/// the runtime).
pub const TIMERS_DUE: &str = "hookline_timers_due";
/// Work (deliveries) waiting, by destination `status`: `healthy`, `throttled`, `failing`
/// (gauge, set by the runtime through [`set_destination_waiting`]).
pub const DESTINATION_WAITING: &str = "hookline_destination_waiting";

/// The buckets of [`ATTEMPT_DURATION`], in seconds (an attempt's whole request is at most 15 s).
pub const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0,
];

/// The `result` label of an attempt: its status class, or what kept it from having one.
pub fn result_class(outcome: &AttemptOutcome) -> &'static str {
    match outcome.status {
        Some(429) => "429",
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        Some(_) => "other",
        None if outcome
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("timed out")) =>
        {
            "timeout"
        }
        None => "connection",
    }
}

/// Every label value [`ATTEMPTS`] takes.
pub const RESULTS: &[&str] = &[
    "2xx",
    "3xx",
    "4xx",
    "429",
    "5xx",
    "timeout",
    "connection",
    "other",
];

/// Describes the measures to the recorder and registers each counter series at zero (a
/// scrape shows every series from the start, not only those that happened).
pub fn describe() {
    use metrics::Unit;
    metrics::describe_counter!(EVENTS_TAKEN, Unit::Count, "Events taken by intake");
    metrics::describe_counter!(WEBHOOKS, Unit::Count, "Webhooks settled, by outcome");
    metrics::describe_counter!(ATTEMPTS, Unit::Count, "Attempts made, by result class");
    metrics::describe_histogram!(ATTEMPT_DURATION, Unit::Seconds, "Attempt duration");
    metrics::describe_gauge!(DELIVERIES_PENDING, Unit::Count, "Deliveries pending");
    metrics::describe_gauge!(
        TIMERS_DUE,
        Unit::Count,
        "Timers due and not yet run, by kind"
    );
    metrics::describe_gauge!(
        DESTINATION_WAITING,
        Unit::Count,
        "Deliveries waiting, by destination status"
    );
    metrics::counter!(EVENTS_TAKEN).increment(0);
    for outcome in ["accepted", "failed"] {
        metrics::counter!(WEBHOOKS, "outcome" => outcome).increment(0);
    }
    for result in RESULTS {
        metrics::counter!(ATTEMPTS, "result" => *result).increment(0);
    }
}

pub(crate) fn event_taken(n: u64) {
    if n > 0 {
        metrics::counter!(EVENTS_TAKEN).increment(n);
    }
}

pub(crate) fn attempt_made(outcome: &AttemptOutcome) {
    metrics::counter!(ATTEMPTS, "result" => result_class(outcome)).increment(1);
    metrics::histogram!(ATTEMPT_DURATION).record(outcome.duration_ms as f64 / 1000.0);
}

/// A delivery whose attempt left it `status`: counted when it is settled.
pub(crate) fn webhook_settled(status: DeliveryStatus) {
    let outcome = match status {
        DeliveryStatus::Accepted => "accepted",
        DeliveryStatus::Failed => "failed",
        DeliveryStatus::Pending => return,
    };
    metrics::counter!(WEBHOOKS, "outcome" => outcome).increment(1);
}

/// How many deliveries are pending now (gauge).
pub fn set_deliveries_pending(n: u64) {
    metrics::gauge!(DELIVERIES_PENDING).set(n as f64);
}

/// `kind`: `retry`, `wait` or `occurrence`.
pub fn set_timers_due(kind: &'static str, n: u64) {
    metrics::gauge!(TIMERS_DUE, "kind" => kind).set(n as f64);
}

/// How many deliveries wait on destinations of this `status` (`healthy`, `throttled`,
/// `failing`; the destination code of SPEC §6a calls it).
pub fn set_destination_waiting(status: &'static str, n: u64) {
    metrics::gauge!(DESTINATION_WAITING, "status" => status).set(n as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(status: Option<u16>, error: Option<&str>) -> AttemptOutcome {
        AttemptOutcome {
            status,
            error: error.map(str::to_string),
            duration_ms: 1,
            response_snippet: None,
            retry_after: None,
        }
    }

    #[test]
    fn attempts_are_classed_by_what_the_receiver_did() {
        let cases = [
            (outcome(Some(204), None), "2xx"),
            (outcome(Some(301), Some("HTTP 301")), "3xx"),
            (outcome(Some(404), Some("HTTP 404")), "4xx"),
            (outcome(Some(429), Some("HTTP 429")), "429"),
            (outcome(Some(503), Some("HTTP 503")), "5xx"),
            (
                outcome(None, Some("timed out (deadline has elapsed)")),
                "timeout",
            ),
            (
                outcome(None, Some("could not connect: refused")),
                "connection",
            ),
            (
                outcome(None, Some("blocked: 10.0.0.1 is a private address")),
                "connection",
            ),
        ];
        for (o, class) in cases {
            assert_eq!(result_class(&o), class, "{:?} {:?}", o.status, o.error);
        }
    }
}
