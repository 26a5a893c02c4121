//! The field catalogue (SPEC §2): what a webhook step may select, the keys inside `data`,
//! the placeholder names and the fields a condition may test.

use serde_json::{Map, Value};

/// Where a catalogue field is read in the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A top-level key of the snapshot.
    Top(&'static str),
    /// `consent.<key>`.
    Consent(&'static str),
    /// `stats.<key>`.
    Stats(&'static str),
}

/// One field of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldDef {
    /// The key (`firstname`, `consentType`, …).
    pub key: &'static str,
    /// Its label, for a person.
    pub label: &'static str,
    /// Its group: `contact`, `consent` or `statistics`.
    pub group: &'static str,
    /// Where it is read in the snapshot.
    pub source: Source,
    /// Holds a date or date-time (what `date_reached` may watch).
    pub is_date: bool,
}

const fn f(
    key: &'static str,
    label: &'static str,
    group: &'static str,
    source: Source,
    is_date: bool,
) -> FieldDef {
    FieldDef {
        key,
        label,
        group,
        source,
        is_date,
    }
}

use Source::{Consent, Stats, Top};

const C: &str = "contact";
const K: &str = "consent";
const S: &str = "statistics";

/// The catalogue, in the order `GET /v1/placeholders` lists it.
pub const FIELDS: &[FieldDef] = &[
    f("id", "Contact id", C, Top("id"), false),
    f("email", "Email", C, Top("email"), false),
    f("firstname", "First name", C, Top("firstname"), false),
    f("lastname", "Last name", C, Top("lastname"), false),
    f(
        "subscriptionDate",
        "Subscription date",
        C,
        Top("subscriptionDate"),
        true,
    ),
    f("updateDate", "Update date", C, Top("updateDate"), true),
    f("language", "Language", C, Top("language"), false),
    f("gender", "Gender", C, Top("gender"), false),
    f("country", "Country", C, Top("country"), false),
    f("company", "Company", C, Top("company"), false),
    f("birthDate", "Birth date", C, Top("birthDate"), true),
    f("postalCode", "Postal code", C, Top("postalCode"), false),
    f("note", "Note", C, Top("note"), false),
    f("groups", "Groups", C, Top("groups"), false),
    f(
        "customFields",
        "Custom fields (all)",
        C,
        Top("customFields"),
        false,
    ),
    f("consentType", "Consent type", K, Consent("type"), false),
    f(
        "consentSource",
        "Consent source",
        K,
        Consent("source"),
        false,
    ),
    f("consentDate", "Consent date", K, Consent("date"), true),
    f(
        "consentExpiration",
        "Consent expiration",
        K,
        Consent("expiration"),
        true,
    ),
    f("consentProof", "Consent proof", K, Consent("proof"), false),
    f("consentIp", "Consent IP address", K, Consent("ip"), false),
    f(
        "mailingsCount",
        "Mailings received",
        S,
        Stats("mailingsCount"),
        false,
    ),
    f(
        "openedMailingsCount",
        "Mailings opened",
        S,
        Stats("openedMailingsCount"),
        false,
    ),
    f(
        "clickedMailingsCount",
        "Mailings clicked",
        S,
        Stats("clickedMailingsCount"),
        false,
    ),
    f(
        "averageOpenRate",
        "Average open rate",
        S,
        Stats("averageOpenRate"),
        false,
    ),
    f(
        "averageClickRate",
        "Average click rate",
        S,
        Stats("averageClickRate"),
        false,
    ),
    f(
        "firstMailingDate",
        "First mailing date",
        S,
        Stats("firstMailingDate"),
        true,
    ),
    f(
        "firstMailingSubject",
        "First mailing subject",
        S,
        Stats("firstMailingSubject"),
        false,
    ),
    f(
        "lastOpenedDate",
        "Last opened date",
        S,
        Stats("lastOpenedDate"),
        true,
    ),
    f(
        "lastOpenedSubject",
        "Last opened subject",
        S,
        Stats("lastOpenedSubject"),
        false,
    ),
    f(
        "lastMailingDate",
        "Last mailing date",
        S,
        Stats("lastMailingDate"),
        true,
    ),
    f(
        "lastMailingSubject",
        "Last mailing subject",
        S,
        Stats("lastMailingSubject"),
        false,
    ),
];

/// A parsed catalogue key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldKey {
    /// A field of the catalogue.
    Known(&'static FieldDef),
    /// `customFields.NAME`: one custom field.
    Custom(String),
}

impl FieldKey {
    /// The field a key names, if it names one.
    pub fn parse(key: &str) -> Option<FieldKey> {
        if let Some(name) = key.strip_prefix("customFields.") {
            let ok = !name.is_empty() && name.len() <= 100 && !name.chars().any(|c| c.is_control());
            return ok.then(|| FieldKey::Custom(name.to_string()));
        }
        FIELDS.iter().find(|d| d.key == key).map(FieldKey::Known)
    }

    /// The key as written in a scenario.
    pub fn key(&self) -> String {
        match self {
            FieldKey::Known(d) => d.key.to_string(),
            FieldKey::Custom(name) => format!("customFields.{name}"),
        }
    }

    /// The key this field takes at the top of the payload's `data`
    /// (`customFields.plan` lives inside `customFields`).
    pub fn data_key(&self) -> &str {
        match self {
            FieldKey::Known(d) => d.key,
            FieldKey::Custom(_) => "customFields",
        }
    }

    /// Reads this field from a contact snapshot; `None` when absent or null.
    pub fn read<'a>(&self, snapshot: &'a Map<String, Value>) -> Option<&'a Value> {
        let value = match self {
            FieldKey::Known(d) => match d.source {
                Source::Top(k) => snapshot.get(k),
                Source::Consent(k) => snapshot.get("consent").and_then(|c| c.get(k)),
                Source::Stats(k) => snapshot.get("stats").and_then(|c| c.get(k)),
            },
            FieldKey::Custom(name) => snapshot.get("customFields").and_then(|c| c.get(name)),
        };
        value.filter(|v| !v.is_null())
    }
}

/// The text form of a value, as a placeholder inside text renders it.
pub fn text_of(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_each_source() {
        let snap = json!({"firstname": "John", "consent": {"ip": "203.0.113.7"},
                          "stats": {"mailingsCount": 12}, "customFields": {"plan": "gold"}});
        let snap = snap.as_object().unwrap();
        let read = |k: &str| FieldKey::parse(k).unwrap().read(snap).cloned();
        assert_eq!(read("firstname"), Some(json!("John")));
        assert_eq!(read("consentIp"), Some(json!("203.0.113.7")));
        assert_eq!(read("mailingsCount"), Some(json!(12)));
        assert_eq!(read("customFields.plan"), Some(json!("gold")));
        assert_eq!(read("customFields.nope"), None);
        assert_eq!(read("lastname"), None);
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(FieldKey::parse("favoriteColor").is_none());
        assert!(FieldKey::parse("customFields.").is_none());
        assert!(FieldKey::parse("consent").is_none());
        assert_eq!(FIELDS.len(), 32);
    }
}
