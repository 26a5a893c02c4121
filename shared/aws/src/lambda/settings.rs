//! The settings the SAM template passes in, read once from the environment.

use anyhow::Context;
use hookline_core::domain::retry::{DEFAULT_DELAYS, DEFAULT_WINDOW, RetryPolicy};

use crate::QueueRef;

/// The settings the SAM template passes in (SPEC §10).
#[derive(Debug, Clone)]
pub struct Settings {
    pub table: String,
    pub advance_queue: QueueRef,
    pub deliver_queue: QueueRef,
    pub schedule_group: String,
    pub scheduler_role_arn: String,
    pub policy: RetryPolicy,
    pub allow_private_targets: bool,
    /// Attempts in flight per destination over every instance (SPEC §6a,
    /// `HOOKLINE_DESTINATION_CONCURRENCY`, default 8).
    pub destination_concurrency: u32,
    /// The most `webhook-deliver` instances at once: the deliver event source's
    /// `MaximumConcurrency` (`HOOKLINE_DELIVER_INSTANCES`, default 8). Each instance lets
    /// `destination_concurrency / deliver_instances` (at least 1) be in flight per destination.
    pub deliver_instances: u32,
}

pub const ENV_TABLE: &str = "HOOKLINE_TABLE";
pub const ENV_ADVANCE_URL: &str = "HOOKLINE_ADVANCE_QUEUE_URL";
pub const ENV_ADVANCE_ARN: &str = "HOOKLINE_ADVANCE_QUEUE_ARN";
pub const ENV_DELIVER_URL: &str = "HOOKLINE_DELIVER_QUEUE_URL";
pub const ENV_DELIVER_ARN: &str = "HOOKLINE_DELIVER_QUEUE_ARN";
pub const ENV_SCHEDULE_GROUP: &str = "HOOKLINE_SCHEDULE_GROUP";
pub const ENV_SCHEDULER_ROLE: &str = "HOOKLINE_SCHEDULER_ROLE_ARN";

/// Every environment variable a function reads.
pub const ENV_VARS: &[&str] = &[
    ENV_TABLE,
    ENV_ADVANCE_URL,
    ENV_ADVANCE_ARN,
    ENV_DELIVER_URL,
    ENV_DELIVER_ARN,
    ENV_SCHEDULE_GROUP,
    ENV_SCHEDULER_ROLE,
    "HOOKLINE_RETRY_WINDOW",
    "HOOKLINE_RETRY_DELAYS",
    "HOOKLINE_ALLOW_PRIVATE_TARGETS",
    ENV_DESTINATION_CONCURRENCY,
    ENV_DELIVER_INSTANCES,
];

pub const ENV_DESTINATION_CONCURRENCY: &str = "HOOKLINE_DESTINATION_CONCURRENCY";
pub const ENV_DELIVER_INSTANCES: &str = "HOOKLINE_DELIVER_INSTANCES";

/// A whole number setting within `range` (absent or empty: `default`).
fn number(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: u32,
    range: std::ops::RangeInclusive<u32>,
) -> anyhow::Result<u32> {
    let Some(text) = get(name).filter(|v| !v.trim().is_empty()) else {
        return Ok(default);
    };
    match text.trim().parse::<u32>() {
        Ok(v) if range.contains(&v) => Ok(v),
        _ => anyhow::bail!(
            "invalid setting {name}: `{text}` is not a whole number from {} to {}",
            range.start(),
            range.end()
        ),
    }
}

impl Settings {
    /// Reads the settings; an invalid or missing one is an error naming it.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Settings> {
        let required = |name: &str| {
            get(name)
                .filter(|v| !v.is_empty())
                .with_context(|| format!("setting {name} is missing"))
        };
        let window = get("HOOKLINE_RETRY_WINDOW").unwrap_or_else(|| DEFAULT_WINDOW.into());
        let delays = get("HOOKLINE_RETRY_DELAYS").unwrap_or_else(|| DEFAULT_DELAYS.into());
        let policy = RetryPolicy::parse(&window, &delays).map_err(|e| {
            let name = if e.starts_with("retry window") {
                "HOOKLINE_RETRY_WINDOW"
            } else {
                "HOOKLINE_RETRY_DELAYS"
            };
            anyhow::anyhow!("invalid setting {name}: {e}")
        })?;
        let allow_private_targets = match get("HOOKLINE_ALLOW_PRIVATE_TARGETS")
            .as_deref()
            .map(str::trim)
        {
            None | Some("") | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(other) => anyhow::bail!(
                "invalid setting HOOKLINE_ALLOW_PRIVATE_TARGETS: `{other}` is not true or false"
            ),
        };
        Ok(Settings {
            table: required(ENV_TABLE)?,
            advance_queue: QueueRef {
                url: required(ENV_ADVANCE_URL)?,
                arn: required(ENV_ADVANCE_ARN)?,
            },
            deliver_queue: QueueRef {
                url: required(ENV_DELIVER_URL)?,
                arn: required(ENV_DELIVER_ARN)?,
            },
            schedule_group: required(ENV_SCHEDULE_GROUP)?,
            scheduler_role_arn: required(ENV_SCHEDULER_ROLE)?,
            policy,
            allow_private_targets,
            destination_concurrency: number(
                &get,
                ENV_DESTINATION_CONCURRENCY,
                hookline_core::domain::destination::DEFAULT_CONCURRENCY,
                1..=10_000,
            )?,
            deliver_instances: number(&get, ENV_DELIVER_INSTANCES, 8, 2..=1_000)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const ALL: &[(&str, &str)] = &[
        (ENV_TABLE, "t"),
        (ENV_ADVANCE_URL, "u1"),
        (ENV_ADVANCE_ARN, "a1"),
        (ENV_DELIVER_URL, "u2"),
        (ENV_DELIVER_ARN, "a2"),
        (ENV_SCHEDULE_GROUP, "g"),
        (ENV_SCHEDULER_ROLE, "r"),
    ];

    #[test]
    fn settings_name_what_is_wrong() {
        let s = Settings::from_env(env(ALL)).unwrap();
        assert_eq!(s.policy, RetryPolicy::default());
        assert!(!s.allow_private_targets);
        let missing = Settings::from_env(env(&ALL[1..])).unwrap_err().to_string();
        assert!(missing.contains(ENV_TABLE), "{missing}");
        let mut bad = ALL.to_vec();
        bad.push(("HOOKLINE_RETRY_DELAYS", "10s,soon"));
        assert!(
            Settings::from_env(env(&bad))
                .unwrap_err()
                .to_string()
                .contains("HOOKLINE_RETRY_DELAYS")
        );
        assert_eq!((s.destination_concurrency, s.deliver_instances), (8, 8));
        for (name, value) in [
            (ENV_DESTINATION_CONCURRENCY, "0"),
            (ENV_DESTINATION_CONCURRENCY, "eight"),
            (ENV_DELIVER_INSTANCES, "1"),
        ] {
            let mut bad = ALL.to_vec();
            bad.push((name, value));
            let e = Settings::from_env(env(&bad)).unwrap_err().to_string();
            assert!(e.contains(name), "{e}");
        }
        let mut bad = ALL.to_vec();
        bad.push(("HOOKLINE_ALLOW_PRIVATE_TARGETS", "maybe"));
        assert!(
            Settings::from_env(env(&bad))
                .unwrap_err()
                .to_string()
                .contains("HOOKLINE_ALLOW_PRIVATE_TARGETS")
        );
    }
}
