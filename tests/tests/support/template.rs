//! infra/template.yaml read as YAML, and what the template tests share.

#![allow(dead_code)]

use serde_yaml::Value;

pub const FUNCTIONS: &[(&str, &str)] = &[
    ("TriggerIntakeFunction", "trigger-intake"),
    ("ScenarioApiFunction", "scenario-api"),
    ("StatsQueryFunction", "stats-query"),
    ("ScenarioAdvanceFunction", "scenario-advance"),
    ("WebhookDeliverFunction", "webhook-deliver"),
];

/// The template, as `support` reads it (one place knows where the file is).
pub use crate::support::template;

pub fn resource<'a>(t: &'a Value, id: &str) -> &'a Value {
    let r = &t["Resources"][id];
    assert!(!r.is_null(), "resource {id} is missing");
    r
}

/// `!Ref X` → ("Ref", "X"); `!GetAtt X.Arn` → ("GetAtt", "X.Arn"); `!Sub "…"` → ("Sub", "…").
pub fn tag(v: &Value) -> Option<(String, String)> {
    match v {
        Value::Tagged(t) => Some((
            t.tag.to_string().trim_start_matches('!').to_string(),
            t.value.as_str()?.to_string(),
        )),
        _ => None,
    }
}

pub fn list(v: &Value) -> Vec<Value> {
    match v {
        Value::Sequence(s) => s.clone(),
        Value::Null => vec![],
        other => vec![other.clone()],
    }
}
