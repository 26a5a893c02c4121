//! The domain: what Hookline is about, as pure types and functions (no clock, store or network).

pub mod catalogue;
pub mod contact;
pub mod delivery;
pub mod destination;
pub mod event;
pub mod ids;
pub mod net;
pub mod occurrence;
pub mod payload;
pub mod retry;
pub mod rule;
pub mod scenario;
pub mod signing;
pub mod time;
pub mod trigger;

use std::fmt;

/// What the caller did wrong: answered 400 (or another 4xx), never retried, nothing stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Invalid {
    /// snake_case machine code, e.g. `invalid_url`.
    pub code: &'static str,
    /// What is wrong, for a person.
    pub message: String,
    /// JSON path of the field at fault (`steps[1].url`), when one field is at fault.
    pub field: Option<String>,
}

impl Invalid {
    /// An error about `field`.
    pub fn new(code: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Invalid {
            code,
            message: message.into(),
            field: Some(field.into()),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{field}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Joins a JSON path and a child key: `join("steps[1]", "url")` → `steps[1].url`.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Deserializes `value` into `T`, turning a serde error into an [`Invalid`] naming the field.
pub fn from_json_value<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
    prefix: &str,
) -> Result<T, Invalid> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let inner = err.path().to_string();
        let mut field = if inner == "." { String::new() } else { inner };
        let message = err.inner().to_string();
        // serde reports a missing key at the parent; name the key itself.
        if let Some(rest) = message.strip_prefix("missing field `")
            && let Some(name) = rest.split('`').next()
        {
            field = join(&field, name);
        }
        // ...and so it does an unknown key inside an internally tagged value (a step).
        if let Some(rest) = message.strip_prefix("unknown field `")
            && let Some(name) = rest.split('`').next()
            && !field.ends_with(name)
        {
            field = join(&field, name);
        }
        Invalid::new(
            "invalid_field",
            join(prefix, &field).trim_start_matches('.').to_string(),
            message,
        )
    })
}
