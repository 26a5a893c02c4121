//! Time helpers: how Hookline writes instants and reads durations.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// RFC 3339, UTC, whole seconds, with `Z`: the payload's `timestamp`.
pub fn rfc3339_seconds(ts: Timestamp) -> String {
    jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%SZ", ts).unwrap_or_else(|_| ts.to_string())
}

/// RFC 3339, UTC, milliseconds, with `Z`: every instant the API returns.
pub fn rfc3339_millis(ts: Timestamp) -> String {
    jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%S%.3fZ", ts).unwrap_or_else(|_| ts.to_string())
}

/// `ts + d`, saturating at the largest representable instant.
pub fn add(ts: Timestamp, d: Duration) -> Timestamp {
    SignedDuration::try_from(d)
        .ok()
        .and_then(|d| ts.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

/// Milliseconds since the Unix epoch.
pub fn to_millis(ts: Timestamp) -> i64 {
    ts.as_millisecond()
}

/// The instant `ms` milliseconds after the Unix epoch.
pub fn from_millis(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Parses `8s`, `12h`, `1m30s`, `250ms` (humantime style, as in `--retry-window 12h`).
pub fn parse_human_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    let span: jiff::Span = text
        .parse::<jiff::Span>()
        .or_else(|_| parse_compact(text))
        .map_err(|_| format!("`{text}` is not a duration like 10s, 5m or 12h"))?;
    let total = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .map_err(|e| format!("`{text}`: {e}"))?;
    if total.is_negative() {
        return Err(format!("`{text}` is negative"));
    }
    Duration::try_from(total).map_err(|e| format!("`{text}`: {e}"))
}

/// `10s`, `1m`, `2h`, `1h30m`, `250ms`, `3d`: a number then a unit, repeated.
fn parse_compact(text: &str) -> Result<jiff::Span, ()> {
    let mut span = jiff::Span::new();
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or(())?;
        if digits == 0 {
            return Err(());
        }
        let n: i64 = rest[..digits].parse().map_err(|_| ())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        span = match unit {
            "ms" => span.try_milliseconds(n),
            "s" | "sec" => span.try_seconds(n),
            "m" | "min" => span.try_minutes(n),
            "h" => span.try_hours(n),
            "d" => span.try_days(n),
            _ => return Err(()),
        }
        .map_err(|_| ())?;
    }
    Ok(span)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        assert_eq!(parse_human_duration("8s"), Ok(Duration::from_secs(8)));
        assert_eq!(
            parse_human_duration("12h"),
            Ok(Duration::from_secs(12 * 3600))
        );
        assert_eq!(parse_human_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_human_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(
            parse_human_duration("250ms"),
            Ok(Duration::from_millis(250))
        );
        assert!(parse_human_duration("").is_err());
        assert!(parse_human_duration("soon").is_err());
        assert!(parse_human_duration("10x").is_err());
    }

    #[test]
    fn formats() {
        let ts: Timestamp = "2026-11-26T12:00:03.456Z".parse().unwrap();
        assert_eq!(rfc3339_seconds(ts), "2026-11-26T12:00:03Z");
        assert_eq!(rfc3339_millis(ts), "2026-11-26T12:00:03.456Z");
    }
}
