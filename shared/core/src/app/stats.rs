//! Statistics (SPEC §7): per-step counters and the deliveries of a webhook step.

use super::scenarios::{cursor_error, page_limit};
use super::views::{DeliveryView, ListView, StepStatsView};
use super::{AppError, Hookline};
use crate::domain::Invalid;
use crate::domain::delivery::DeliveryStatus;
use crate::domain::scenario::StepDef;
use crate::ports::DeliveryFilter;

impl Hookline {
    /// One entry per step of the scenario, in the scenario's order.
    pub async fn scenario_stats(
        &self,
        account: i64,
        scenario_id: &str,
    ) -> Result<Vec<StepStatsView>, AppError> {
        let scenario = self.scenario(account, scenario_id).await?;
        let counts = self
            .ports
            .deliveries
            .step_counts(account, scenario_id)
            .await?;
        Ok(scenario
            .def
            .steps
            .iter()
            .map(|step| {
                let c = counts
                    .iter()
                    .find(|c| c.step_id == step.id())
                    .cloned()
                    .unwrap_or_default();
                let webhook = matches!(step, StepDef::SendWebhook(_));
                StepStatsView {
                    step_id: step.id().to_string(),
                    kind: step.kind().to_string(),
                    passes: c.passes,
                    unique_contacts: c.unique_contacts,
                    accepted: webhook.then_some(c.accepted),
                    pending: webhook.then_some(c.pending),
                    failed: webhook.then_some(c.failed),
                }
            })
            .collect())
    }

    /// One step's statistics.
    pub async fn step_stats(
        &self,
        account: i64,
        scenario_id: &str,
        step_id: &str,
    ) -> Result<StepStatsView, AppError> {
        self.scenario_stats(account, scenario_id)
            .await?
            .into_iter()
            .find(|s| s.step_id == step_id)
            .ok_or_else(|| {
                AppError::NotFound(format!("no step `{step_id}` in scenario `{scenario_id}`"))
            })
    }

    /// A webhook step's deliveries, newest first, filtered by status.
    pub async fn step_deliveries(
        &self,
        account: i64,
        scenario_id: &str,
        step_id: &str,
        status: Option<&str>,
        limit: Option<&str>,
        cursor: Option<&str>,
    ) -> Result<ListView<DeliveryView>, AppError> {
        let scenario = self.scenario(account, scenario_id).await?;
        match scenario.def.step(step_id) {
            Some(StepDef::SendWebhook(_)) => {}
            Some(_) => {
                return Err(AppError::NotFound(format!(
                    "step `{step_id}` is not a webhook step"
                )));
            }
            None => {
                return Err(AppError::NotFound(format!(
                    "no step `{step_id}` in scenario `{scenario_id}`"
                )));
            }
        }
        let status = match status {
            None | Some("") => None,
            Some(s) => Some(DeliveryStatus::parse(s).ok_or_else(|| {
                Invalid::new(
                    "invalid_query",
                    "status",
                    "must be pending, accepted or failed",
                )
            })?),
        };
        let limit = page_limit(limit)?;
        let page = self
            .ports
            .deliveries
            .list(&DeliveryFilter {
                account,
                scenario_id,
                step_id,
                status,
                since: None,
                cursor,
                limit,
            })
            .await
            .map_err(cursor_error)?;
        Ok(ListView {
            items: page.items.into_iter().map(DeliveryView::from).collect(),
            next_cursor: page.next_cursor,
        })
    }
}
