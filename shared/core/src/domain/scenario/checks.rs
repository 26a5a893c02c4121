//! The checks a definition's parts pass that do not need the graph: custom headers, step
//! ids, wait durations.

use std::collections::BTreeMap;

use super::{Invalid, join};

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

pub(super) fn check_step_id(id: &str, path: &str) -> Result<(), Invalid> {
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
