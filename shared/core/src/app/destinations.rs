//! Destinations (SPEC §6a): the configured pace of a URL, and the health views.
//!
//! An account's destinations are the URLs its webhook steps name (any scenario that is not
//! archived) and any URL the runtime keeps a state for (an archived scenario's deliveries
//! still retry). Their ids derive from the account and the URL, so they are stable.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::Serialize;
use utoipa::ToSchema;

use super::scenarios::page_limit;
use super::views::ListView;
use super::{AppError, Hookline};
use crate::domain::Invalid;
use crate::domain::destination::{Destination, Health, destination_id};
use crate::domain::scenario::{ScenarioStatus, StepDef};
use crate::domain::time::rfc3339_millis;
use crate::ports::DestinationState;

/// How long a URL's configured pace is trusted before the scenarios are read again.
const LIMITS_TTL: Duration = Duration::from_secs(5);

/// One destination's health (SPEC §6a).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DestinationView {
    /// `dst_` + 16 hex digits, from the account and the URL.
    pub id: String,
    /// The URL exactly as the steps name it.
    pub url: String,
    /// `healthy`, `throttled` or `failing`.
    pub status: Health,
    /// The lowest `rateLimit` of the steps naming this URL (`null`: none).
    pub rate_limit: Option<f64>,
    /// The requests per second allowed now (`null`: unpaced).
    pub pace: Option<f64>,
    /// Attempts in flight now.
    pub in_flight: u64,
    /// Deliveries held back by pace or by a failing destination.
    pub waiting: u64,
    /// RFC 3339.
    pub last_attempt_at: Option<String>,
    /// The last failed or refused attempt's error.
    pub last_error: Option<String>,
    /// RFC 3339.
    pub failing_since: Option<String>,
}

impl DestinationView {
    fn new(
        account: i64,
        url: String,
        rate_limit: Option<f64>,
        kept: Option<DestinationState>,
        now: Timestamp,
    ) -> DestinationView {
        let (mut state, waiting) = match kept {
            Some(k) => (k.state, k.waiting.unwrap_or(0)),
            None => (Destination::default(), 0),
        };
        state.configure(rate_limit);
        DestinationView {
            id: destination_id(account, &url),
            status: state.health(now),
            rate_limit,
            pace: state.pace(),
            in_flight: u64::from(state.in_flight),
            waiting,
            last_attempt_at: state.last_attempt_at.map(rfc3339_millis),
            last_error: state.last_error.clone(),
            failing_since: state.failing_since.map(rfc3339_millis),
            url,
        }
    }
}

impl Hookline {
    /// The configured pace of `url` (SPEC §6a): the lowest `rateLimit` of the account's steps
    /// naming it, in scenarios that are not archived. Read again every few seconds.
    pub async fn url_rate_limit(&self, account: i64, url: &str) -> anyhow::Result<Option<f64>> {
        let key = (account, url.to_string());
        if let Ok(limits) = self.url_limits.lock()
            && let Some((limit, at)) = limits.get(&key)
            && at.elapsed() < LIMITS_TTL
        {
            return Ok(*limit);
        }
        let limits = self.account_limits(account).await?;
        let limit = limits.get(url).copied().flatten();
        for (url, limit) in limits {
            super::cache::put(&self.url_limits, (account, url), (limit, Instant::now()));
        }
        Ok(limit)
    }

    /// Every URL the account's webhook steps name (scenarios not archived), with its lowest
    /// `rateLimit`.
    async fn account_limits(&self, account: i64) -> anyhow::Result<BTreeMap<String, Option<f64>>> {
        let mut urls: BTreeMap<String, Option<f64>> = BTreeMap::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .ports
                .scenarios
                .list(account, cursor.as_deref(), 100)
                .await?;
            for record in &page.items {
                if record.status == ScenarioStatus::Archived {
                    continue;
                }
                for step in &record.def.steps {
                    if let StepDef::SendWebhook(w) = step {
                        let entry = urls.entry(w.url.clone()).or_insert(None);
                        if let Some(limit) = w.rate_limit {
                            *entry = Some(entry.map_or(limit, |l: f64| l.min(limit)));
                        }
                    }
                }
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        Ok(urls)
    }

    /// `GET /v1/destinations` (SPEC §6a): by id, `?status=` filters.
    pub async fn list_destinations(
        &self,
        account: i64,
        status: Option<&str>,
        limit: Option<&str>,
        cursor: Option<&str>,
    ) -> Result<ListView<DestinationView>, AppError> {
        let status = match status {
            None | Some("") => None,
            Some(s) => Some(Health::parse(s).ok_or_else(|| {
                Invalid::new(
                    "invalid_query",
                    "status",
                    "must be healthy, throttled or failing",
                )
            })?),
        };
        let limit = page_limit(limit)?;
        if let Some(c) = cursor
            && !is_destination_id(c)
        {
            return Err(Invalid::new(
                "invalid_query",
                "cursor",
                "this cursor was not issued by a previous page",
            )
            .into());
        }
        let mut all = self.destinations_of(account).await?;
        all.retain(|v| status.is_none_or(|s| v.status == s));
        all.retain(|v| cursor.is_none_or(|c| v.id.as_str() > c));
        let more = all.len() > limit;
        all.truncate(limit);
        let next_cursor = if more {
            all.last().map(|v| v.id.clone())
        } else {
            None
        };
        Ok(ListView {
            items: all,
            next_cursor,
        })
    }

    /// `GET /v1/destinations/{id}`.
    pub async fn destination(&self, account: i64, id: &str) -> Result<DestinationView, AppError> {
        if !is_destination_id(id) {
            return Err(AppError::NotFound(format!("no destination `{id}`")));
        }
        self.destinations_of(account)
            .await?
            .into_iter()
            .find(|v| v.id == id)
            .ok_or_else(|| AppError::NotFound(format!("no destination `{id}`")))
    }

    /// Every destination of the account, by id.
    async fn destinations_of(&self, account: i64) -> anyhow::Result<Vec<DestinationView>> {
        let mut urls = self.account_limits(account).await?;
        for url in self.ports.destinations.urls(account).await? {
            urls.entry(url).or_insert(None);
        }
        let now = self.ports.clock.now();
        let mut views = Vec::with_capacity(urls.len());
        for (url, limit) in urls {
            let kept = self.ports.destinations.get(account, &url).await?;
            views.push(DestinationView::new(account, url, limit, kept, now));
        }
        views.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(views)
    }
}

/// `dst_` + 16 lowercase hex digits.
fn is_destination_id(id: &str) -> bool {
    id.len() == 20
        && id.starts_with("dst_")
        && id[4..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
