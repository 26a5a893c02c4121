//! Triggers (SPEC §3): which events enroll a contact in a scenario.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::occurrence::TimeRule;
use super::{Invalid, join};

/// The event types the platform reports, with the filter keys a trigger of that type may set.
/// `contact_updated` only refreshes the snapshot: no scenario has it as a trigger.
pub const EVENT_TYPES: &[(&str, &[&str])] = &[
    ("form_subscribed", &["formId"]),
    ("group_added", &["groupId"]),
    ("mailing_opened", &["mailingId"]),
    ("link_clicked", &["mailingId", "url"]),
    ("segment_matched", &["segmentId"]),
    ("survey_answered", &["surveyId"]),
    ("profile_updated", &["formId"]),
    ("contact_updated", &[]),
];

/// Time-based triggers: fired by Hookline itself from stored snapshots.
pub const TIME_TRIGGERS: &[&str] = &["date_reached", "consent_expiring"];

/// A scenario's trigger as submitted: `{"type": ..., <filter keys>}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TriggerDef {
    /// The trigger type (`form_subscribed`, `date_reached`, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// Filter keys; one left out matches any value.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub filter: Map<String, Value>,
}

impl TriggerDef {
    /// Checks the type and filter keys, naming the faulty one under `path`.
    pub fn validate(&self, path: &str) -> Result<(), Invalid> {
        if self.is_time_based() {
            return TimeRule::from_trigger(self, path).map(|_| ());
        }
        let type_path = join(path, "type");
        let allowed = match EVENT_TYPES.iter().find(|(t, _)| *t == self.kind) {
            Some((_, keys)) if self.kind != "contact_updated" => *keys,
            Some(_) => {
                return Err(Invalid::new(
                    "invalid_trigger",
                    type_path,
                    "`contact_updated` only refreshes a contact; it cannot start a scenario",
                ));
            }
            None => {
                return Err(Invalid::new(
                    "invalid_trigger",
                    type_path,
                    format!("`{}` is not a known trigger type", self.kind),
                ));
            }
        };
        for (key, value) in &self.filter {
            let at = join(path, key);
            if !allowed.contains(&key.as_str()) {
                return Err(Invalid::new(
                    "invalid_trigger",
                    at,
                    format!(
                        "is not a filter of `{}` (allowed: {})",
                        self.kind,
                        allowed.join(", ")
                    ),
                ));
            }
            if !matches!(value, Value::Number(_) | Value::String(_) | Value::Null) {
                return Err(Invalid::new(
                    "invalid_trigger",
                    at,
                    "must be a number or text",
                ));
            }
        }
        Ok(())
    }

    /// `date_reached` or `consent_expiring`: fired by Hookline from stored snapshots (see
    /// [`TimeRule`]), never by an event.
    pub fn is_time_based(&self) -> bool {
        TIME_TRIGGERS.contains(&self.kind.as_str())
    }

    /// Does an event of `kind` with this `context` fire this trigger?
    pub fn matches(&self, kind: &str, context: &Map<String, Value>) -> bool {
        self.kind == kind
            && self.filter.iter().all(|(key, want)| match want {
                Value::Null => true,
                want => context.get(key).is_some_and(|got| same_value(got, want)),
            })
    }
}

/// `7` matches `"7"`; text matches ignoring case.
fn same_value(a: &Value, b: &Value) -> bool {
    let text = |v: &Value| match v {
        Value::String(s) => s.trim().to_lowercase(),
        other => other.to_string(),
    };
    text(a) == text(b)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn trigger(v: Value) -> TriggerDef {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn filters_match_or_are_ignored() {
        let t = trigger(json!({"type": "group_added", "groupId": 7}));
        let ctx = |v: Value| v.as_object().unwrap().clone();
        assert!(t.matches("group_added", &ctx(json!({"groupId": 7}))));
        assert!(t.matches("group_added", &ctx(json!({"groupId": "7"}))));
        assert!(!t.matches("group_added", &ctx(json!({"groupId": 8}))));
        assert!(!t.matches("group_added", &ctx(json!({}))));
        assert!(!t.matches("form_subscribed", &ctx(json!({"groupId": 7}))));
        let any = trigger(json!({"type": "link_clicked"}));
        assert!(any.matches("link_clicked", &ctx(json!({"mailingId": 1, "url": "x"}))));
    }

    #[test]
    fn validation() {
        assert!(
            trigger(json!({"type": "form_subscribed", "formId": 12}))
                .validate("trigger")
                .is_ok()
        );
        let birthday = trigger(json!({"type": "date_reached", "field": "birthDate"}));
        assert!(birthday.validate("trigger").is_ok());
        assert!(birthday.is_time_based());
        assert!(
            trigger(json!({"type": "consent_expiring", "daysBefore": 30}))
                .validate("trigger")
                .is_ok()
        );
        let e = trigger(json!({"type": "date_reached", "field": "birthDate", "groupId": 1}))
            .validate("trigger")
            .unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref()),
            ("invalid_trigger", Some("trigger.groupId"))
        );
        assert!(!trigger(json!({"type": "group_added"})).is_time_based());
        let e = trigger(json!({"type": "form_subscribed", "groupId": 1}))
            .validate("trigger")
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("trigger.groupId"));
        let e = trigger(json!({"type": "nope"}))
            .validate("trigger")
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("trigger.type"));
        let e = trigger(json!({"type": "contact_updated"}))
            .validate("trigger")
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("trigger.type"));
    }
}
