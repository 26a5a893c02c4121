//! The contact snapshot the platform sends (SPEC §2).

use serde_json::{Map, Value};

use super::{Invalid, catalogue::FIELDS, catalogue::Source, join};

/// A checked contact snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    /// The contact id.
    pub id: i64,
    /// The email address.
    pub email: String,
    /// The snapshot as received (keys in their order).
    pub snapshot: Map<String, Value>,
}

impl Contact {
    /// Checks a snapshot: `id` an integer, `email` present, dates RFC 3339, known nested shapes.
    /// `path` is where the snapshot sits in the request (`contact`).
    pub fn parse(value: Value, path: &str) -> Result<Contact, Invalid> {
        let Value::Object(snapshot) = value else {
            return Err(Invalid::new(
                "invalid_contact",
                path,
                "must be a JSON object",
            ));
        };
        let id = match snapshot.get("id").map(json_integer) {
            Some(Some(id)) => id,
            None => {
                return Err(Invalid::new(
                    "missing_field",
                    join(path, "id"),
                    "is required",
                ));
            }
            Some(None) => {
                return Err(Invalid::new(
                    "invalid_field",
                    join(path, "id"),
                    format!("must be an integer from -{MAX_ID} to {MAX_ID}"),
                ));
            }
        };
        let email = match snapshot.get("email") {
            Some(Value::String(s)) if looks_like_email(s) => s.clone(),
            None | Some(Value::Null) => {
                return Err(Invalid::new(
                    "missing_field",
                    join(path, "email"),
                    "is required",
                ));
            }
            Some(_) => {
                return Err(Invalid::new(
                    "invalid_field",
                    join(path, "email"),
                    "must be an email address",
                ));
            }
        };
        for (nested, kind) in [
            ("consent", "consent"),
            ("stats", "stats"),
            ("customFields", "customFields"),
        ] {
            match snapshot.get(nested) {
                None | Some(Value::Null) | Some(Value::Object(_)) => {}
                Some(_) => {
                    return Err(Invalid::new(
                        "invalid_field",
                        join(path, kind),
                        "must be a JSON object",
                    ));
                }
            }
        }
        if !matches!(
            snapshot.get("groups"),
            None | Some(Value::Null) | Some(Value::Array(_))
        ) {
            return Err(Invalid::new(
                "invalid_field",
                join(path, "groups"),
                "must be an array",
            ));
        }
        for def in FIELDS.iter().filter(|d| d.is_date) {
            let (value, at) = match def.source {
                Source::Top(k) => (snapshot.get(k), join(path, k)),
                Source::Consent(k) => (
                    snapshot.get("consent").and_then(|c| c.get(k)),
                    join(&join(path, "consent"), k),
                ),
                Source::Stats(k) => (
                    snapshot.get("stats").and_then(|c| c.get(k)),
                    join(&join(path, "stats"), k),
                ),
            };
            match value {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) if parse_date(s).is_some() => {}
                Some(_) => {
                    return Err(Invalid::new(
                        "invalid_field",
                        at,
                        "must be an RFC 3339 date-time (or YYYY-MM-DD)",
                    ));
                }
            }
        }
        Ok(Contact {
            id,
            email,
            snapshot,
        })
    }
}

/// The largest contact id: 2^53 − 1, the integers every JSON reader holds exactly.
pub const MAX_ID: i64 = (1 << 53) - 1;

/// An integer as JSON Schema counts one (`7` or `7.0`), within ±[`MAX_ID`].
fn json_integer(v: &Value) -> Option<i64> {
    let n = match v {
        Value::Number(n) => n,
        _ => return None,
    };
    let id = match n.as_i64() {
        Some(i) => i,
        None => {
            let f = n.as_f64()?;
            if f.fract() != 0.0 || f.abs() > MAX_ID as f64 {
                return None;
            }
            f as i64
        }
    };
    (id.abs() <= MAX_ID).then_some(id)
}

fn looks_like_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && s.chars().count() <= 320
        && !s.chars().any(char::is_whitespace)
}

/// Parses an RFC 3339 date-time or a plain `YYYY-MM-DD` (taken as midnight UTC).
pub fn parse_date(s: &str) -> Option<jiff::Timestamp> {
    if let Ok(ts) = s.parse::<jiff::Timestamp>() {
        return Some(ts);
    }
    s.parse::<jiff::civil::Date>()
        .ok()
        .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requires_id_and_email() {
        let e = Contact::parse(json!({"email": "a@b.c"}), "contact").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("contact.id"));
        let e = Contact::parse(json!({"id": "7", "email": "a@b.c"}), "contact").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("contact.id"));
        let e = Contact::parse(json!({"id": 7}), "contact").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("contact.email"));
        let e = Contact::parse(json!({"id": 7, "email": "nope"}), "contact").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("contact.email"));
        let c = Contact::parse(json!({"id": 7, "email": "a@b.c"}), "contact").unwrap();
        assert_eq!((c.id, c.email.as_str()), (7, "a@b.c"));
    }

    #[test]
    fn checks_dates() {
        let ok = json!({"id": 1, "email": "a@b.c", "birthDate": "1985-07-14",
                        "consent": {"expiration": "2026-01-15T10:00:00Z"}});
        assert!(Contact::parse(ok, "contact").is_ok());
        let bad = json!({"id": 1, "email": "a@b.c", "consent": {"expiration": "tomorrow"}});
        let e = Contact::parse(bad, "contact").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("contact.consent.expiration"));
    }

    #[test]
    fn ids_are_json_integers_in_the_exact_range() {
        let id =
            |v: Value| Contact::parse(json!({"id": v, "email": "a@b.c"}), "contact").map(|c| c.id);
        assert_eq!(id(json!(7.0)), Ok(7), "7.0 is an integer in JSON");
        assert_eq!(id(json!(MAX_ID)), Ok(MAX_ID));
        assert_eq!(id(json!(-MAX_ID)), Ok(-MAX_ID));
        for bad in [
            json!(MAX_ID + 1),
            json!(7.5),
            json!("7"),
            json!(null),
            json!(1e300),
        ] {
            let e = id(bad.clone()).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("contact.id"), "{bad}");
        }
    }
}
