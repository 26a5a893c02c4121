//! The signing secret of a webhook step (SPEC §5): read it, rotate it.

use serde::Serialize;
use utoipa::ToSchema;

use super::{AppError, Hookline};
use crate::domain::scenario::{ScenarioRecord, StepDef};
use crate::domain::signing::StepSecret;
use crate::domain::time::rfc3339_seconds;

/// `GET …/steps/{stepId}/secret`: the secret receivers verify with.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretView {
    /// `whsec_` + base64 of 32 random bytes.
    pub secret: String,
    /// When this secret was made.
    pub created_at: String,
    /// Until when the previous secret still verifies (`null` before any rotation).
    pub previous_valid_until: Option<String>,
}

impl From<&StepSecret> for SecretView {
    fn from(s: &StepSecret) -> Self {
        SecretView {
            secret: s.secret.clone(),
            created_at: rfc3339_seconds(s.created_at),
            previous_valid_until: s.previous_valid_until.map(rfc3339_seconds),
        }
    }
}

/// 404 unless `step_id` is a webhook step of the scenario that signs.
fn signed_step(record: &ScenarioRecord, step_id: &str) -> Result<(), AppError> {
    match record.def.step(step_id) {
        Some(StepDef::SendWebhook(w)) if w.signing != Some(false) => Ok(()),
        Some(StepDef::SendWebhook(_)) => Err(AppError::NotFound(format!(
            "step `{step_id}` does not sign its requests (`signing`: false)"
        ))),
        Some(_) => Err(AppError::NotFound(format!(
            "step `{step_id}` is not a webhook step"
        ))),
        None => Err(AppError::NotFound(format!(
            "no step `{step_id}` in scenario `{}`",
            record.id
        ))),
    }
}

impl Hookline {
    /// The signing secret of a webhook step (404 when it does not sign or has none yet).
    pub async fn step_secret(
        &self,
        account: i64,
        scenario_id: &str,
        step_id: &str,
    ) -> Result<SecretView, AppError> {
        let record = self.scenario(account, scenario_id).await?;
        signed_step(&record, step_id)?;
        record
            .secrets
            .get(step_id)
            .map(SecretView::from)
            .ok_or_else(|| {
                AppError::NotFound(format!(
                    "step `{step_id}` has no secret yet (stored before signing): rotate it to make one"
                ))
            })
    }

    /// A new secret for the step; the previous one keeps verifying for 24 hours, and both
    /// signatures are sent meanwhile. Works in every status (an archived scenario's deliveries
    /// may still be retried). Saved over the version read: a rotation that another save (a
    /// `PUT`, another rotation) overtook answers 409 and changes nothing — it never answers a
    /// secret that is not stored, nor writes an older definition back.
    pub async fn rotate_secret(
        &self,
        account: i64,
        scenario_id: &str,
        step_id: &str,
    ) -> Result<SecretView, AppError> {
        let mut record = self.scenario(account, scenario_id).await?;
        signed_step(&record, step_id)?;
        let read = crate::ports::Version::of(&record);
        let now = super::scenarios::next_version(&read, self.ports.clock.now());
        let rotated = match record.secrets.get(step_id) {
            Some(current) => current.rotated(now),
            None => StepSecret::new(now),
        };
        let view = SecretView::from(&rotated);
        record.secrets.insert(step_id.to_string(), rotated);
        record.updated_at = now;
        self.save(record, read).await?;
        Ok(view)
    }
}
