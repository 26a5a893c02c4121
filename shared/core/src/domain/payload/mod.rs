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
mod tests;
