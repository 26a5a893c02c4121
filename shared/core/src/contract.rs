//! One contract suite per port. Every adapter's tests call these with a fresh store, so the
//! SQLite and the AWS adapters are held to the same assertions.

#![allow(clippy::unwrap_used)]
use jiff::Timestamp;
use serde_json::json;

use crate::domain::scenario::{ScenarioDef, ScenarioRecord, ScenarioStatus};
use crate::domain::signing::StepSecret;
use crate::ports::*;

mod contacts;
mod deliveries;
mod destinations;
mod enrollments;
mod flow;
mod flow_occurrences;
mod keys;
mod occurrences;
mod queue;
mod scenarios;
pub use contacts::contact_store;
pub use deliveries::delivery_store;
pub(crate) use deliveries::{attempt, delivery, delivery_on, pass};
pub use destinations::destination_gate;
pub use enrollments::enrollment_store;
pub use flow::flow_store;
pub use flow_occurrences::flow_store_occurrences;
pub use keys::key_store;
pub use occurrences::occurrence_store;
pub use queue::{Receive, queue};
pub use scenarios::scenario_store;

fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).unwrap()
}

/// A unique suffix so suites sharing a store (an emulator) never see each other's records.
fn unique() -> String {
    UlidIds.new_id("t")
}

fn scenario(
    account: i64,
    id: &str,
    trigger: &str,
    status: ScenarioStatus,
    at: i64,
) -> ScenarioRecord {
    let def: ScenarioDef = serde_json::from_value(json!({
        "name": format!("scenario {id}"),
        "trigger": {"type": trigger, "formId": 12},
        "start": "hook",
        "steps": [{"id": "hook", "type": "send_webhook", "url": "https://example.com/h", "next": null}]
    }))
    .unwrap();
    ScenarioRecord {
        id: id.to_string(),
        account,
        status,
        // fixed, so that a read can be compared with what was written
        secrets: [(
            "hook".to_string(),
            StepSecret {
                secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
                created_at: ts(at),
                previous: None,
                previous_valid_until: None,
            },
        )]
        .into(),
        def,
        created_at: ts(at),
        updated_at: ts(at),
    }
}
