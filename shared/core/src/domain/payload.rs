//! The webhook payload (SPEC §5): `additional` templates with `{{placeholders}}`, the `data`
//! object built from a contact, and the envelope around it.

use serde::Serialize;
use serde_json::{Map, Value};

use super::catalogue::{FieldKey, text_of};
use super::contact::Contact;

/// The envelope's `event`.
pub const EVENT_NAME: &str = "automation.webhook.send";

/// An `additional` value: text with placeholders, or exactly one placeholder (which keeps
/// the JSON type of its field).
#[derive(Debug, Clone, PartialEq)]
pub enum Template {
    /// Exactly one placeholder: the field's JSON value (`null` when missing).
    Lone(FieldKey),
    /// Text with placeholders: always a string.
    Text(Vec<Piece>),
}

/// A part of a text template.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    /// Text as written.
    Literal(String),
    /// A placeholder, rendered as text (empty when missing).
    Field(FieldKey),
}

impl Template {
    /// Parses `{{key}}` placeholders (spaces inside the braces are allowed). An unknown
    /// placeholder is an error naming it. A `{{` with no closing `}}` is literal text.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            let Some(close) = rest[open + 2..].find("}}") else {
                break;
            };
            if open > 0 {
                pieces.push(Piece::Literal(rest[..open].to_string()));
            }
            let name = rest[open + 2..open + 2 + close].trim();
            let key = FieldKey::parse(name)
                .ok_or_else(|| format!("unknown placeholder `{{{{{name}}}}}`"))?;
            pieces.push(Piece::Field(key));
            rest = &rest[open + 2 + close + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Literal(rest.to_string()));
        }
        if let [Piece::Field(key)] = pieces.as_slice() {
            return Ok(Template::Lone(key.clone()));
        }
        Ok(Template::Text(pieces))
    }

    /// The value for this contact.
    pub fn render(&self, contact: &Contact) -> Value {
        match self {
            Template::Lone(key) => key.read(&contact.snapshot).cloned().unwrap_or(Value::Null),
            Template::Text(pieces) => {
                let mut out = String::new();
                for piece in pieces {
                    match piece {
                        Piece::Literal(s) => out.push_str(s),
                        Piece::Field(key) => out.push_str(&text_of(key.read(&contact.snapshot))),
                    }
                }
                Value::String(out)
            }
        }
    }
}

/// Builds `data`: `type`, `id`, the selected fields in their order (a missing one is `null`;
/// `customFields.NAME` picks go into one `customFields` object), then `additional`.
pub fn build_data(
    fields: &[FieldKey],
    additional: &[(String, Template)],
    contact: &Contact,
) -> Map<String, Value> {
    let mut data = Map::new();
    data.insert("type".into(), Value::String("member".into()));
    data.insert("id".into(), Value::from(contact.id));
    let all_custom = fields
        .iter()
        .any(|f| f.data_key() == "customFields" && matches!(f, FieldKey::Known(_)));
    for field in fields {
        match field {
            FieldKey::Custom(name) if !all_custom => {
                let entry = data
                    .entry("customFields")
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(obj) = entry {
                    obj.insert(
                        name.clone(),
                        field
                            .read(&contact.snapshot)
                            .cloned()
                            .unwrap_or(Value::Null),
                    );
                }
            }
            FieldKey::Custom(_) => {}
            FieldKey::Known(def) => {
                let value = field
                    .read(&contact.snapshot)
                    .cloned()
                    .unwrap_or(Value::Null);
                data.insert(def.key.to_string(), value);
            }
        }
    }
    for (key, template) in additional {
        data.insert(key.clone(), template.render(contact));
    }
    data
}

/// The envelope's `scenario`.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioRef<'a> {
    /// The scenario id.
    pub id: &'a str,
    /// The webhook step.
    #[serde(rename = "stepId")]
    pub step_id: &'a str,
}

/// The JSON body of every attempt.
#[derive(Debug, Clone, Serialize)]
pub struct Envelope<'a> {
    /// The envelope id (the `webhook-id`): the same on every attempt.
    pub id: &'a str,
    /// Always [`EVENT_NAME`].
    pub event: &'static str,
    /// The delivery's creation (RFC 3339, UTC).
    pub timestamp: String,
    /// The account.
    #[serde(rename = "idClient")]
    pub id_client: i64,
    /// The scenario and step (absent from the Test button's request).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scenario: Option<ScenarioRef<'a>>,
    /// `type`, `id`, the selected fields, then `additional`.
    pub data: Map<String, Value>,
}

impl Envelope<'_> {
    /// The bytes every attempt sends.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The sample contact the Test button sends.
pub fn sample_data() -> Map<String, Value> {
    let mut data = Map::new();
    data.insert("type".into(), "member".into());
    data.insert("id".into(), 54321.into());
    data.insert("email".into(), "john.doe@example.org".into());
    data.insert("firstname".into(), "John".into());
    data.insert("lastname".into(), "Doe".into());
    data
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn john() -> Contact {
        Contact::parse(
            json!({"id": 54321, "email": "john.doe@example.org", "firstname": "John", "lastname": "Doe",
                   "groups": [{"id": 7, "name": "Newsletter"}],
                   "customFields": {"favoriteColor": "blue", "plan": "gold"},
                   "consent": {"type": "express"}, "stats": {"mailingsCount": 12}}),
            "contact",
        )
        .unwrap()
    }

    fn keys(list: &[&str]) -> Vec<FieldKey> {
        list.iter().map(|k| FieldKey::parse(k).unwrap()).collect()
    }

    fn additional(list: &[(&str, &str)]) -> Vec<(String, Template)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), Template::parse(v).unwrap()))
            .collect()
    }

    #[test]
    fn spec_example_bytes() {
        let data = build_data(
            &keys(&[
                "email",
                "firstname",
                "lastname",
                "consentType",
                "customFields.plan",
            ]),
            &additional(&[
                ("full_name", "{{firstname}} {{lastname}}"),
                ("source", "newsletter"),
            ]),
            &john(),
        );
        let env = Envelope {
            id: "evt_01",
            event: EVENT_NAME,
            timestamp: "2026-11-26T12:00:03Z".into(),
            id_client: 3,
            scenario: Some(ScenarioRef {
                id: "scn_1",
                step_id: "to-crm",
            }),
            data,
        };
        assert_eq!(
            env.to_json(),
            r#"{"id":"evt_01","event":"automation.webhook.send","timestamp":"2026-11-26T12:00:03Z","idClient":3,"scenario":{"id":"scn_1","stepId":"to-crm"},"data":{"type":"member","id":54321,"email":"john.doe@example.org","firstname":"John","lastname":"Doe","consentType":"express","customFields":{"plan":"gold"},"full_name":"John Doe","source":"newsletter"}}"#
        );
    }

    #[test]
    fn lone_placeholders_keep_their_type() {
        let data = build_data(
            &[],
            &additional(&[
                ("n", "{{mailingsCount}}"),
                ("g", "{{ groups }}"),
                ("c", "{{customFields}}"),
                ("missing", "{{company}}"),
                ("text_missing", "at {{company}}!"),
                ("count_text", "{{mailingsCount}} mails"),
            ]),
            &john(),
        );
        assert_eq!(data["n"], json!(12));
        assert_eq!(data["g"], json!([{"id": 7, "name": "Newsletter"}]));
        assert_eq!(data["c"], json!({"favoriteColor": "blue", "plan": "gold"}));
        assert_eq!(data["missing"], Value::Null);
        assert_eq!(data["text_missing"], json!("at !"));
        assert_eq!(data["count_text"], json!("12 mails"));
    }

    #[test]
    fn missing_selected_fields_are_null_and_all_custom_fields_win() {
        let data = build_data(
            &keys(&["company", "customFields.plan", "customFields"]),
            &[],
            &john(),
        );
        assert_eq!(data["company"], Value::Null);
        assert_eq!(
            data["customFields"],
            json!({"favoriteColor": "blue", "plan": "gold"})
        );
    }

    #[test]
    fn unknown_placeholder_and_unclosed_braces() {
        assert!(
            Template::parse("hi {{nickname}}")
                .unwrap_err()
                .contains("nickname")
        );
        assert_eq!(
            Template::parse("a {{ b").unwrap(),
            Template::Text(vec![Piece::Literal("a {{ b".into())])
        );
    }
}
