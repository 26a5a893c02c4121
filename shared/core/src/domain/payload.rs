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
        self.render_within(contact, &mut Texts::default(), usize::MAX)
            .unwrap_or(Value::Null)
    }

    /// Renders this value when its JSON text takes at most `budget` bytes; otherwise builds
    /// nothing and answers the size it would take (`Err`). Field texts come from `texts`, so a
    /// placeholder repeated thousands of times is read once.
    fn render_within<'a>(
        &'a self,
        contact: &Contact,
        texts: &mut Texts<'a>,
        budget: usize,
    ) -> Result<Value, usize> {
        match self {
            Template::Lone(key) => {
                let value = key.read(&contact.snapshot).unwrap_or(&Value::Null);
                let size = json_size(value);
                if size > budget {
                    return Err(size);
                }
                Ok(value.clone())
            }
            Template::Text(pieces) => {
                let mut size = 2usize; // the quotes
                for piece in pieces {
                    size = size.saturating_add(match piece {
                        Piece::Literal(s) => escaped_len(s),
                        Piece::Field(key) => texts.get(key, contact).2,
                    });
                }
                if size > budget {
                    return Err(size);
                }
                let mut out = String::with_capacity(size);
                for piece in pieces {
                    match piece {
                        Piece::Literal(s) => out.push_str(s),
                        Piece::Field(key) => out.push_str(&texts.get(key, contact).1),
                    }
                }
                Ok(Value::String(out))
            }
        }
    }
}

/// The text of each field a template names, read once, with its escaped JSON length.
#[derive(Default)]
struct Texts<'a>(Vec<(&'a FieldKey, String, usize)>);

impl<'a> Texts<'a> {
    fn get(&mut self, key: &'a FieldKey, contact: &Contact) -> &(&'a FieldKey, String, usize) {
        let at = match self.0.iter().position(|(k, _, _)| *k == key) {
            Some(at) => at,
            None => {
                let text = text_of(key.read(&contact.snapshot));
                let len = escaped_len(&text);
                self.0.push((key, text, len));
                self.0.len() - 1
            }
        };
        &self.0[at]
    }
}

/// The longest payload once rendered (SPEC §5): 256 KiB.
pub const MAX_PAYLOAD: usize = 256 * 1024;

/// A payload past [`MAX_PAYLOAD`], and the size it would have had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge(pub usize);

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "payload too large: {} bytes (limit {MAX_PAYLOAD})",
            self.0
        )
    }
}

/// The bytes `s` takes inside a JSON string as serde_json writes it (without the quotes).
fn escaped_len(s: &str) -> usize {
    s.bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..0x20 => 6,
            _ => 1,
        })
        .sum()
}

/// The bytes of `value`'s compact JSON text, counted without building it.
pub(crate) fn json_size(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// Builds `data`: `type`, `id`, the selected fields in their order (a missing one is `null`;
/// `customFields.NAME` picks go into one `customFields` object), then `additional`.
pub fn build_data(
    fields: &[FieldKey],
    additional: &[(String, Template)],
    contact: &Contact,
) -> Map<String, Value> {
    build_data_within(fields, additional, contact, usize::MAX).0
}

/// [`build_data`] that renders `additional` values only while their JSON texts add up to at
/// most `budget` bytes: a value past it is left empty (`""`), and the bytes it would have
/// taken beyond that are answered beside the data. Nothing larger than `budget` is built.
fn build_data_within(
    fields: &[FieldKey],
    additional: &[(String, Template)],
    contact: &Contact,
    budget: usize,
) -> (Map<String, Value>, usize) {
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
    let (mut texts, mut used, mut left_out) = (Texts::default(), 0usize, 0usize);
    for (key, template) in additional {
        let value = match template.render_within(contact, &mut texts, budget.saturating_sub(used)) {
            Ok(value) => {
                used = used.saturating_add(json_size(&value));
                value
            }
            Err(size) => {
                used = used.saturating_add(size);
                left_out = left_out.saturating_add(size.saturating_sub(2)); // `""` stands in its place
                Value::String(String::new())
            }
        };
        data.insert(key.clone(), value);
    }
    (data, left_out)
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

/// The payload of a webhook step for `contact` (SPEC §5): the envelope with its `data` (see
/// [`build_data`]), or [`TooLarge`] with the size it would have had past [`MAX_PAYLOAD`] —
/// counted, never built (a template repeating a long field thousands of times stays cheap).
pub fn render_payload(
    envelope: Envelope<'_>,
    fields: &[FieldKey],
    additional: &[(String, Template)],
    contact: &Contact,
) -> Result<String, TooLarge> {
    let (data, left_out) = build_data_within(fields, additional, contact, MAX_PAYLOAD);
    let json = Envelope { data, ..envelope }.to_json();
    let size = json.len().saturating_add(left_out);
    if size > MAX_PAYLOAD {
        return Err(TooLarge(size));
    }
    Ok(json)
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

    fn envelope() -> Envelope<'static> {
        Envelope {
            id: "evt_01",
            event: EVENT_NAME,
            timestamp: "2026-11-26T12:00:03Z".into(),
            id_client: 3,
            scenario: Some(ScenarioRef {
                id: "scn_1",
                step_id: "hook",
            }),
            data: Map::new(),
        }
    }

    #[test]
    fn escaped_lengths_are_serde_json_s() {
        for s in [
            "",
            "plain",
            "quote \" and \\ back",
            "tab\t nl\n cr\r \u{8}\u{c}",
            "\u{1}\u{1f}\u{7f}",
            "é 😀 </>",
        ] {
            assert_eq!(
                escaped_len(s),
                serde_json::to_string(s).unwrap().len() - 2,
                "{s:?}"
            );
        }
    }

    /// Under the bound: the same bytes as rendered in full; over it: the exact size it would
    /// have had, without building it.
    #[test]
    fn a_payload_past_256_kib_is_refused_with_its_exact_size() {
        let mut contact = john();
        contact
            .snapshot
            .insert("note".into(), json!("a \"quoted\"\nnote\u{1} ".repeat(500)));
        let template = format!("<{}>", "{{note}}-".repeat(8));
        let list: Vec<(String, &str)> = (0..3)
            .map(|i| (format!("k{i}"), template.as_str()))
            .collect();
        let list: Vec<(&str, &str)> = list.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let additional = additional(&list);
        let fields = keys(&["email", "note"]);
        let full = Envelope {
            data: build_data(&fields, &additional, &contact),
            ..envelope()
        }
        .to_json();
        assert!(full.len() > MAX_PAYLOAD, "{}", full.len());
        assert_eq!(
            render_payload(envelope(), &fields, &additional, &contact),
            Err(TooLarge(full.len()))
        );
        assert_eq!(
            TooLarge(full.len()).to_string(),
            format!("payload too large: {} bytes (limit 262144)", full.len())
        );
        // one key fewer: under the bound, rendered whole
        let small = &additional[..1];
        let whole = Envelope {
            data: build_data(&fields, small, &contact),
            ..envelope()
        }
        .to_json();
        assert!(whole.len() <= MAX_PAYLOAD);
        assert_eq!(
            render_payload(envelope(), &fields, small, &contact),
            Ok(whole)
        );
    }

    /// 100 keys of 4,096 `{{note}}` with a 100 KB note: 40 GB if rendered; refused at once.
    #[test]
    fn gigabytes_of_placeholders_are_counted_not_built() {
        let mut contact = john();
        contact
            .snapshot
            .insert("note".into(), json!("n".repeat(100_000)));
        let template = "{{note}}".repeat(4_096);
        let additional: Vec<(String, Template)> = (0..100)
            .map(|i| (format!("k{i}"), Template::parse(&template).unwrap()))
            .collect();
        let started = std::time::Instant::now();
        let refused = render_payload(envelope(), &[], &additional, &contact).unwrap_err();
        assert!(refused.0 > 40_000_000_000, "{refused}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            started.elapsed()
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
