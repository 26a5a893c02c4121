//! Scenario management: create, read, list, edit drafts, and the lifecycle.

use serde_json::Value;

use super::views::{ListView, ScenarioView};
use super::{AppError, Hookline};
use crate::domain::Invalid;
use crate::domain::scenario::{ScenarioDef, ScenarioRecord, ScenarioStatus};
use crate::ports::{BadCursor, Version};

pub const MAX_PAGE: usize = 100;
pub const DEFAULT_PAGE: usize = 50;

/// Checks `?limit=`: 1 to 100, default 50.
pub fn page_limit(limit: Option<&str>) -> Result<usize, Invalid> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            _ => Err(Invalid::new(
                "invalid_query",
                "limit",
                format!("must be a whole number from 1 to {MAX_PAGE}"),
            )),
        },
    }
}

/// Turns an adapter's [`BadCursor`] into a 400 naming `cursor`.
pub fn cursor_error(err: anyhow::Error) -> AppError {
    if err.is::<BadCursor>() {
        Invalid::new("invalid_query", "cursor", err.to_string()).into()
    } else {
        AppError::Unexpected(err)
    }
}

impl Hookline {
    /// Parses and validates a request body as a definition.
    async fn checked_def(&self, body: Value) -> Result<ScenarioDef, AppError> {
        let def = ScenarioDef::from_json(body)?;
        self.check_def(&def).await?;
        Ok(def)
    }

    /// Validates a definition, including the DNS check of every webhook URL.
    async fn check_def(&self, def: &ScenarioDef) -> Result<(), AppError> {
        let sender = &self.ports.sender;
        def.compile(sender.allows_private_targets())?;
        for (field, url) in def.webhook_urls() {
            let parsed = url::Url::parse(&url)
                .map_err(|e| Invalid::new("invalid_url", &field, e.to_string()))?;
            sender
                .check_target(&parsed)
                .await
                .map_err(|why| Invalid::new("forbidden_target", &field, why))?;
        }
        Ok(())
    }

    /// Validates a definition and stores it as a new draft (`POST /v1/scenarios`).
    pub async fn create_scenario(
        &self,
        account: i64,
        body: Value,
    ) -> Result<ScenarioView, AppError> {
        let def = self.checked_def(body).await?;
        let now = self.ports.clock.now();
        let record = ScenarioRecord {
            id: self.ports.ids.new_id("scn"),
            account,
            status: ScenarioStatus::Draft,
            secrets: def.secrets(&Default::default(), now),
            def,
            created_at: now,
            updated_at: now,
        };
        self.ports.scenarios.insert(&record).await?;
        self.scenario_changed(account, &record.id);
        Ok(record.into())
    }

    pub(crate) async fn scenario(
        &self,
        account: i64,
        id: &str,
    ) -> Result<ScenarioRecord, AppError> {
        self.ports
            .scenarios
            .get(account, id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no scenario `{id}`")))
    }

    /// One of the account's scenarios (404 for another account's).
    pub async fn get_scenario(&self, account: i64, id: &str) -> Result<ScenarioView, AppError> {
        Ok(self.scenario(account, id).await?.into())
    }

    /// The account's scenarios, newest first, a page at a time.
    pub async fn list_scenarios(
        &self,
        account: i64,
        cursor: Option<&str>,
        limit: Option<&str>,
    ) -> Result<ListView<ScenarioView>, AppError> {
        let limit = page_limit(limit)?;
        let page = self
            .ports
            .scenarios
            .list(account, cursor, limit)
            .await
            .map_err(cursor_error)?;
        Ok(ListView {
            items: page.items.into_iter().map(ScenarioView::from).collect(),
            next_cursor: page.next_cursor,
        })
    }

    /// `PUT`: only a draft may be edited.
    pub async fn update_scenario(
        &self,
        account: i64,
        id: &str,
        body: Value,
    ) -> Result<ScenarioView, AppError> {
        let mut record = self.scenario(account, id).await?;
        if record.status != ScenarioStatus::Draft {
            return Err(AppError::Conflict(format!(
                "only a draft can be edited; this scenario is {}",
                record.status.as_str()
            )));
        }
        let read = Version::of(&record);
        record.def = self.checked_def(body).await?;
        record.updated_at = next_version(&read, self.ports.clock.now());
        // the secret of every step id that remains is kept (SPEC §5)
        record.secrets = record.def.secrets(&record.secrets, record.updated_at);
        self.save(record, read).await
    }

    /// `draft` → `active`: new events enroll contacts.
    pub async fn activate_scenario(
        &self,
        account: i64,
        id: &str,
    ) -> Result<ScenarioView, AppError> {
        let mut record = self.scenario(account, id).await?;
        if record.status != ScenarioStatus::Draft {
            return Err(AppError::Conflict(format!(
                "only a draft can be activated; this scenario is {}",
                record.status.as_str()
            )));
        }
        // Targets may have changed their DNS since the draft was saved.
        self.check_def(&record.def).await?;
        let read = Version::of(&record);
        record.status = ScenarioStatus::Active;
        record.updated_at = next_version(&read, self.ports.clock.now());
        if record.def.trigger.is_time_based() {
            // every stored contact is considered (SPEC §3), page by page in the background;
            // queued first, so that no crash leaves it active without its backfill
            self.queue_backfill(record.account, &record.id).await?;
        }
        self.save(record, read).await
    }

    /// `draft` or `active` → `archived`, for good.
    pub async fn archive_scenario(&self, account: i64, id: &str) -> Result<ScenarioView, AppError> {
        let mut record = self.scenario(account, id).await?;
        if record.status == ScenarioStatus::Archived {
            return Err(AppError::Conflict(
                "this scenario is already archived".into(),
            ));
        }
        let read = Version::of(&record);
        record.status = ScenarioStatus::Archived;
        record.updated_at = next_version(&read, self.ports.clock.now());
        self.save(record, read).await
    }

    /// Copies any scenario into a new draft.
    pub async fn duplicate_scenario(
        &self,
        account: i64,
        id: &str,
    ) -> Result<ScenarioView, AppError> {
        let source = self.scenario(account, id).await?;
        let now = self.ports.clock.now();
        let record = ScenarioRecord {
            id: self.ports.ids.new_id("scn"),
            account,
            status: ScenarioStatus::Draft,
            // the copy signs as the source did: its receivers keep verifying (SPEC §5)
            secrets: source.def.secrets(&source.secrets, now),
            def: source.def,
            created_at: now,
            updated_at: now,
        };
        self.ports.scenarios.insert(&record).await?;
        self.scenario_changed(account, &record.id);
        Ok(record.into())
    }

    /// Stores `record` over the version it was read at (`expected`), or answers 409 when
    /// another save came in between (a `PUT`, a rotation, a change of status): nothing read
    /// before it is written back over it.
    pub(crate) async fn save(
        &self,
        record: ScenarioRecord,
        expected: Version,
    ) -> Result<ScenarioView, AppError> {
        let updated = self.ports.scenarios.update(&record, expected).await;
        self.scenario_changed(record.account, &record.id);
        if !updated? {
            return Err(AppError::Conflict(
                "the scenario changed meanwhile; read it again".into(),
            ));
        }
        Ok(record.into())
    }
}

/// The `updated_at` of a save over the version `read`: now, in whole milliseconds (as stores
/// keep it), and always after the version read — two saves in one millisecond are two versions.
pub(crate) fn next_version(read: &Version, now: jiff::Timestamp) -> jiff::Timestamp {
    let now = jiff::Timestamp::from_millisecond(now.as_millisecond()).unwrap_or(now);
    let after = read
        .updated_at
        .checked_add(jiff::SignedDuration::from_millis(1))
        .unwrap_or(read.updated_at);
    now.max(after)
}
