//! Scenarios (SPEC §4): the definition as submitted, its validation, and the compiled graph
//! the engine walks.

use std::collections::{BTreeMap, HashMap, HashSet};

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

/// Header names a step may not set (case-insensitive), besides every `webhook-*`.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
];

/// Checks one custom header (SPEC §4). `path` is the `headers` object's path.
pub fn check_header(name: &str, value: &str, path: &str) -> Result<(), Invalid> {
    let at = join(path, name);
    if name.is_empty()
        || name.len() > 64
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(Invalid::new(
            "invalid_header",
            at,
            "a header name is 1 to 64 characters of A-Z, a-z, 0-9 and - (no spaces or special characters)",
        ));
    }
    let lower = name.to_ascii_lowercase();
    if RESERVED_HEADERS.contains(&lower.as_str()) || lower.starts_with("webhook-") {
        return Err(Invalid::new(
            "reserved_header",
            at,
            format!("`{name}` is set by Hookline and cannot be overridden"),
        ));
    }
    if value.chars().count() > 1024 {
        return Err(Invalid::new(
            "invalid_header",
            at,
            "a header value is at most 1024 characters",
        ));
    }
    // What HTTP can carry (RFC 9110 field-value without obs-text): visible ASCII, space, tab.
    if !value
        .chars()
        .all(|c| c == ' ' || c == '\t' || c.is_ascii_graphic())
    {
        return Err(Invalid::new(
            "invalid_header",
            at,
            "a header value is visible ASCII, spaces and tabs only (no CR, LF, NUL, other control or non-ASCII character)",
        ));
    }
    Ok(())
}

/// Checks a step's headers (names, values, reserved ones), naming the faulty one under `path`.
pub fn check_headers(
    headers: &BTreeMap<String, String>,
    path: &str,
) -> Result<Vec<(String, String)>, Invalid> {
    if headers.len() > 50 {
        return Err(Invalid::new("invalid_header", path, "at most 50 headers"));
    }
    headers
        .iter()
        .map(|(k, v)| check_header(k, v, path).map(|()| (k.clone(), v.clone())))
        .collect()
}

fn check_step_id(id: &str, path: &str) -> Result<(), Invalid> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(Invalid::new(
            "invalid_step_id",
            join(path, "id"),
            "a step id is 1 to 64 characters of A-Z, a-z, 0-9, - and _",
        ));
    }
    Ok(())
}

/// Parses an ISO 8601 duration (`PT2H`, `P1DT12H`, `P1W`); it must be positive and at most a year.
pub fn parse_wait(text: &str, path: &str) -> Result<jiff::Span, Invalid> {
    let bad = || {
        Invalid::new(
            "invalid_duration",
            path,
            "must be a positive ISO 8601 duration such as PT2H or P1D, at most a year",
        )
    };
    if !text.starts_with('P') {
        return Err(bad());
    }
    let span: jiff::Span = text.parse().map_err(|_| bad())?;
    let reference = jiff::civil::date(2026, 1, 1);
    let total = span
        .total((jiff::Unit::Second, reference))
        .map_err(|_| bad())?;
    if total <= 0.0 || total > 366.0 * 86400.0 {
        return Err(bad());
    }
    Ok(span)
}

impl ScenarioDef {
    /// Parses a request body into a definition, naming the field at fault.
    pub fn from_json(value: Value) -> Result<ScenarioDef, Invalid> {
        super::from_json_value(value, "")
    }

    /// Validates everything that needs no I/O (SPEC §4) and builds the graph.
    /// `allow_private` lifts the literal-address URL check (DNS is checked by the caller).
    pub fn compile(&self, allow_private: bool) -> Result<Compiled, Invalid> {
        let name = self.name.trim();
        if name.is_empty() || self.name.chars().count() > 200 {
            return Err(Invalid::new(
                "invalid_field",
                "name",
                "must be 1 to 200 characters",
            ));
        }
        self.trigger.validate("trigger")?;
        if self.steps.is_empty() {
            return Err(Invalid::new(
                "invalid_field",
                "steps",
                "a scenario needs at least one step",
            ));
        }
        if self.steps.len() > MAX_STEPS {
            return Err(Invalid::new(
                "too_many_steps",
                "steps",
                format!("at most {MAX_STEPS} steps"),
            ));
        }
        let mut index = HashMap::new();
        for (i, step) in self.steps.iter().enumerate() {
            let path = format!("steps[{i}]");
            check_step_id(step.id(), &path)?;
            if index.insert(step.id().to_string(), i).is_some() {
                return Err(Invalid::new(
                    "duplicate_step_id",
                    join(&path, "id"),
                    format!("`{}` is used by another step", step.id()),
                ));
            }
        }
        match &self.start {
            None => {
                return Err(Invalid::new(
                    "invalid_field",
                    "start",
                    "must name the first step",
                ));
            }
            Some(s) if !index.contains_key(s) => {
                return Err(Invalid::new(
                    "unknown_step",
                    "start",
                    format!("`{s}` is not a step of this scenario"),
                ));
            }
            Some(_) => {}
        }
        for (i, step) in self.steps.iter().enumerate() {
            for (key, target) in step.exits() {
                if let Some(t) = target
                    && !index.contains_key(t)
                {
                    return Err(Invalid::new(
                        "unknown_step",
                        format!("steps[{i}].{key}"),
                        format!("`{t}` is not a step of this scenario"),
                    ));
                }
            }
        }
        self.check_acyclic(&index)?;
        let mut steps = HashMap::new();
        for (i, step) in self.steps.iter().enumerate() {
            let path = format!("steps[{i}]");
            let compiled = match step {
                StepDef::SendWebhook(w) => Step::Webhook(compile_webhook(w, &path, allow_private)?),
                StepDef::Condition(c) => Step::Condition {
                    rule: Rule::parse(&c.rule, &join(&path, "rule"))?,
                    yes: c.yes.clone(),
                    no: c.no.clone(),
                },
                StepDef::Wait(w) => Step::Wait {
                    duration: parse_wait(&w.duration, &join(&path, "duration"))?,
                    next: w.next.clone(),
                },
            };
            steps.insert(step.id().to_string(), compiled);
        }
        Ok(Compiled {
            start: self.start.clone(),
            steps,
        })
    }

    fn check_acyclic(&self, index: &HashMap<String, usize>) -> Result<(), Invalid> {
        // Iterative depth-first search with colours: 0 new, 1 on the path, 2 done.
        let mut colour = vec![0u8; self.steps.len()];
        for root in 0..self.steps.len() {
            if colour[root] != 0 {
                continue;
            }
            let mut stack = vec![(root, 0usize)];
            colour[root] = 1;
            while let Some((node, exit)) = stack.pop() {
                let exits = self.steps[node].exits();
                if exit < exits.len() {
                    stack.push((node, exit + 1));
                    if let Some(target) = exits[exit].1 {
                        let t = index[target];
                        if colour[t] == 1 {
                            return Err(Invalid::new(
                                "cycle",
                                format!("steps[{node}].{}", exits[exit].0),
                                format!("leads back to `{target}`: scenarios may not loop"),
                            ));
                        }
                        if colour[t] == 0 {
                            colour[t] = 1;
                            stack.push((t, 0));
                        }
                    }
                } else {
                    colour[node] = 2;
                }
            }
        }
        Ok(())
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

fn compile_webhook(
    w: &WebhookStepDef,
    path: &str,
    allow_private: bool,
) -> Result<WebhookStep, Invalid> {
    let url = check_url(&w.url, &join(path, "url"), allow_private)?;
    let mut fields = Vec::new();
    let mut data_keys: HashSet<String> = ["type".to_string(), "id".to_string()].into();
    for (j, key) in w.fields.iter().enumerate() {
        let at = format!("{path}.fields[{j}]");
        let field = FieldKey::parse(key).ok_or_else(|| {
            Invalid::new(
                "unknown_field",
                &at,
                format!("`{key}` is not a catalogue field"),
            )
        })?;
        if fields.contains(&field) {
            return Err(Invalid::new(
                "duplicate_field",
                at,
                format!("`{key}` is selected twice"),
            ));
        }
        if field.key() != "id" {
            data_keys.insert(field.data_key().to_string());
        }
        fields.push(field);
    }
    if w.additional.len() > 100 {
        return Err(Invalid::new(
            "invalid_field",
            join(path, "additional"),
            "at most 100 additional keys",
        ));
    }
    let mut additional = Vec::new();
    for (key, value) in &w.additional {
        let at = join(&join(path, "additional"), key);
        if key.is_empty() || key.len() > 100 {
            return Err(Invalid::new(
                "invalid_field",
                at,
                "a key is 1 to 100 characters",
            ));
        }
        if data_keys.contains(key) {
            return Err(Invalid::new(
                "key_collision",
                at,
                format!(
                    "`{key}` is already in the payload's data (`type`, `id` or a selected field)"
                ),
            ));
        }
        let Value::String(text) = value else {
            return Err(Invalid::new(
                "invalid_field",
                at,
                "must be text (with optional {{placeholders}})",
            ));
        };
        if text.chars().count() > 4096 {
            return Err(Invalid::new("invalid_field", at, "at most 4096 characters"));
        }
        let template =
            Template::parse(text).map_err(|e| Invalid::new("unknown_placeholder", &at, e))?;
        additional.push((key.clone(), template));
    }
    let headers = check_headers(&w.headers, &join(path, "headers"))?;
    if let Some(limit) = w.rate_limit
        && !(crate::domain::destination::MIN_PACE..=crate::domain::destination::MAX_PACE)
            .contains(&limit)
    {
        return Err(Invalid::new(
            "invalid_field",
            join(path, "rateLimit"),
            "must be a number of requests per second from 0.1 to 10000",
        ));
    }
    Ok(WebhookStep {
        id: w.id.clone(),
        url,
        fields,
        additional,
        headers,
        next: w.next.clone(),
        rate_limit: w.rate_limit,
    })
}

#[cfg(test)]
mod tests;
