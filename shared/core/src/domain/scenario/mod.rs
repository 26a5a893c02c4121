//! Scenarios (SPEC §4): the definition as submitted, its validation, and the compiled graph
//! the engine walks.
//!
//! The definition's types are here; its validation and compilation in `compile.rs`, the checks
//! of single fields (headers, step ids, waits) in `checks.rs`.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;
use utoipa::ToSchema;

use super::catalogue::FieldKey;
use super::net::check_url;
use super::payload::Template;
use super::rule::Rule;
use super::signing::{StepSecret, StepSecrets};
use super::trigger::TriggerDef;
use super::{Invalid, join};

mod checks;
mod compile;
pub use checks::{check_header, check_headers, parse_wait};

/// Most steps in a scenario (SPEC §4).
pub const MAX_STEPS: usize = 100;

/// A scenario's lifecycle: `draft` → `active` → `archived`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ScenarioStatus {
    /// Editable; enrolls nobody.
    Draft,
    /// New events enroll contacts.
    Active,
    /// For good: no new enrollments; deliveries already made keep retrying.
    Archived,
}

impl ScenarioStatus {
    /// The status as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            ScenarioStatus::Draft => "draft",
            ScenarioStatus::Active => "active",
            ScenarioStatus::Archived => "archived",
        }
    }

    /// The status written `s`, if it is one.
    pub fn parse(s: &str) -> Option<ScenarioStatus> {
        match s {
            "draft" => Some(ScenarioStatus::Draft),
            "active" => Some(ScenarioStatus::Active),
            "archived" => Some(ScenarioStatus::Archived),
            _ => None,
        }
    }
}

/// A scenario as submitted (and returned).
/// Unknown keys are refused (a typo such as `allowRentry` must not be dropped silently).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({
    "name": "Welcome to CRM",
    "trigger": {"type": "form_subscribed", "formId": 12},
    "start": "to-crm",
    "steps": [{"id": "to-crm", "type": "send_webhook", "url": "https://crm.example.com/hooks/new-lead",
               "fields": ["email", "firstname"], "next": null}]
}))]
pub struct ScenarioDef {
    /// The scenario's name.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: String,
    /// What enrolls contacts.
    pub trigger: TriggerDef,
    /// Whether a contact may go through it more than once.
    #[serde(default)]
    pub allow_reentry: bool,
    /// The first step; `null`: none.
    pub start: Option<String>,
    /// The steps, at most 100.
    pub steps: Vec<StepDef>,
}

/// A step as submitted, by its `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StepDef {
    /// `send_webhook`.
    SendWebhook(WebhookStepDef),
    /// `condition`.
    Condition(ConditionStepDef),
    /// `wait`.
    Wait(WaitStepDef),
}

/// A `send_webhook` step as submitted (SPEC §4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookStepDef {
    /// The step id.
    pub id: String,
    /// The receiver's URL.
    pub url: String,
    /// Catalogue keys to send in `data`.
    #[serde(default)]
    pub fields: Vec<String>,
    /// Extra `data` keys, text with placeholders.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub additional: Map<String, Value>,
    /// Headers sent with every attempt.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The step after it; `null`: the end.
    #[serde(default)]
    pub next: Option<String>,
    /// SPEC §4 `signing` (default `true`): every attempt carries Standard Webhooks
    /// signature headers made with the step's secret (SPEC §5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing: Option<bool>,
    /// SPEC §4 `rateLimit`: requests per second toward this step's URL (0.1 to 10,000;
    /// absent or `null`: none). Steps that share a URL share the lowest (SPEC §6a).
    #[serde(default, rename = "rateLimit", skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0.1, maximum = 10000.0, nullable)]
    pub rate_limit: Option<f64>,
}

/// A `condition` step as submitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConditionStepDef {
    /// The step id.
    pub id: String,
    /// The rule (SPEC §4).
    #[schema(value_type = Object)]
    pub rule: Value,
    /// The step when the rule holds; `null`: the end.
    #[serde(default)]
    pub yes: Option<String>,
    /// The step when it does not; `null`: the end.
    #[serde(default)]
    pub no: Option<String>,
}

/// A `wait` step as submitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitStepDef {
    /// The step id.
    pub id: String,
    /// ISO 8601 duration, e.g. `PT2H`, `P1D`.
    pub duration: String,
    /// The step after it; `null`: the end.
    #[serde(default)]
    pub next: Option<String>,
}

impl StepDef {
    /// The step id.
    pub fn id(&self) -> &str {
        match self {
            StepDef::SendWebhook(s) => &s.id,
            StepDef::Condition(s) => &s.id,
            StepDef::Wait(s) => &s.id,
        }
    }

    /// The step's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            StepDef::SendWebhook(_) => "send_webhook",
            StepDef::Condition(_) => "condition",
            StepDef::Wait(_) => "wait",
        }
    }

    /// The steps this one may lead to, with the key that names each.
    fn exits(&self) -> Vec<(&'static str, Option<&str>)> {
        match self {
            StepDef::SendWebhook(s) => vec![("next", s.next.as_deref())],
            StepDef::Condition(s) => vec![("yes", s.yes.as_deref()), ("no", s.no.as_deref())],
            StepDef::Wait(s) => vec![("next", s.next.as_deref())],
        }
    }
}

/// A stored scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioRecord {
    /// The scenario id (`scn_…`).
    pub id: String,
    /// The account it belongs to.
    pub account: i64,
    /// Where it is in its lifecycle.
    pub status: ScenarioStatus,
    /// The definition as submitted.
    pub def: ScenarioDef,
    /// The signing secret of each signed webhook step (never part of the definition a
    /// client reads back; `GET …/steps/{stepId}/secret` shows it).
    pub secrets: StepSecrets,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was last changed (its version).
    pub updated_at: Timestamp,
}

/// The validated graph.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The first step.
    pub start: Option<String>,
    /// The steps by id.
    pub steps: HashMap<String, Step>,
}

/// A validated step.
#[derive(Debug, Clone)]
pub enum Step {
    /// A webhook step.
    Webhook(WebhookStep),
    /// A condition.
    Condition {
        /// The rule.
        rule: Rule,
        /// The step when it holds.
        yes: Option<String>,
        /// The step when it does not.
        no: Option<String>,
    },
    /// A wait.
    Wait {
        /// How long.
        duration: jiff::Span,
        /// The step after it.
        next: Option<String>,
    },
}

/// A validated webhook step.
#[derive(Debug, Clone)]
pub struct WebhookStep {
    /// The step id.
    pub id: String,
    /// The receiver's URL.
    pub url: Url,
    /// The fields to send.
    pub fields: Vec<FieldKey>,
    /// The `additional` templates, by key.
    pub additional: Vec<(String, Template)>,
    /// The headers.
    pub headers: Vec<(String, String)>,
    /// The step after it.
    pub next: Option<String>,
    /// Requests per second toward the URL (`rateLimit`), when the step sets one.
    pub rate_limit: Option<f64>,
}
impl ScenarioDef {
    /// Parses a request body into a definition, naming the field at fault.
    pub fn from_json(value: Value) -> Result<ScenarioDef, Invalid> {
        super::from_json_value(value, "")
    }

    /// The URLs of every webhook step, with their paths (for the DNS check).
    pub fn webhook_urls(&self) -> Vec<(String, String)> {
        self.steps
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                StepDef::SendWebhook(w) => Some((format!("steps[{i}].url"), w.url.clone())),
                _ => None,
            })
            .collect()
    }

    /// The step with this id.
    pub fn step(&self, id: &str) -> Option<&StepDef> {
        self.steps.iter().find(|s| s.id() == id)
    }

    /// The ids of the webhook steps that sign their requests (`signing` unset or `true`).
    pub fn signed_steps(&self) -> impl Iterator<Item = &str> {
        self.steps.iter().filter_map(|s| match s {
            StepDef::SendWebhook(w) if w.signing != Some(false) => Some(w.id.as_str()),
            _ => None,
        })
    }

    /// The secrets this definition needs: those of `kept` for step ids that remain signed,
    /// a new one for every other signed step.
    pub fn secrets(&self, kept: &StepSecrets, now: Timestamp) -> StepSecrets {
        self.signed_steps()
            .map(|id| {
                let secret = kept
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| StepSecret::new(now));
                (id.to_string(), secret)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
