//! Enrollments, the re-entry rule and event answers.

use anyhow::Context;
use async_trait::async_trait;
use hookline_core::domain::event::IntakeAnswer;
use hookline_core::domain::time::{from_millis, to_millis};
use hookline_core::ports::{
    EnrollOutcome, Enrollment, EnrollmentState, EnrollmentStore, StoreResult,
};

use super::*;

fn enrollment_item(e: &Enrollment) -> Item {
    let mut item = key(format!("ENR#{}", e.id), "ENR");
    item.insert("id".into(), s(&e.id));
    item.insert("account".into(), n(e.account));
    item.insert("scenario_id".into(), s(&e.scenario_id));
    item.insert("contact_id".into(), n(e.contact_id));
    item.insert("seq".into(), n(e.seq));
    if let Some(step) = &e.step_id {
        item.insert("step_id".into(), s(step));
    }
    item.insert("state".into(), s(e.state.as_str()));
    item.insert("created_at".into(), n(to_millis(e.created_at)));
    item
}

#[async_trait]
impl EnrollmentStore for DynamoStore {
    async fn event_answer(
        &self,
        account: i64,
        event_id: &str,
    ) -> StoreResult<Option<IntakeAnswer>> {
        let item = self
            .get_item(format!("EVT#{account}#{event_id}"), "EVT")
            .await?;
        Ok(item
            .map(|i| get_s(&i, "answer"))
            .transpose()?
            .map(|t| serde_json::from_str(&t))
            .transpose()?)
    }

    async fn save_event_answer(
        &self,
        account: i64,
        answer: &IntakeAnswer,
    ) -> StoreResult<IntakeAnswer> {
        let pk = format!("EVT#{account}#{}", answer.event_id);
        let mut item = key(pk.clone(), "EVT");
        item.insert("answer".into(), s(serde_json::to_string(answer)?));
        item.insert("expires_at".into(), ttl(7));
        if self.put_new(item, "event").await? {
            return Ok(answer.clone());
        }
        let stored = self
            .get_item(pk, "EVT")
            .await?
            .context("event answer vanished")?;
        Ok(serde_json::from_str(&get_s(&stored, "answer")?)?)
    }

    /// Without a transaction (half the write units): without `allow_reentry` the contact's
    /// entry is claimed first (a conditional put naming this enrollment), then the enrollment
    /// is put. A retry after a crash between the two finds the claim naming this very
    /// enrollment and puts it; another event's finds another's name: already entered. (Until
    /// the event that crashed is sent again — an event not answered is always sent again — the
    /// contact counts as entered without an enrollment.)
    async fn create(&self, e: &Enrollment, allow_reentry: bool) -> StoreResult<EnrollOutcome> {
        if !allow_reentry {
            let mut entry = key(format!("ENT#{}#{}", e.scenario_id, e.contact_id), "ENT");
            entry.insert("enrollment_id".into(), s(&e.id));
            if !self.claim(entry, "enrollment_id", &e.id).await? {
                return Ok(EnrollOutcome::AlreadyEntered);
            }
        }
        if self.put_new(enrollment_item(e), "enrollment").await? {
            Ok(EnrollOutcome::Created)
        } else {
            Ok(EnrollOutcome::AlreadyExists)
        }
    }

    async fn get(&self, id: &str) -> StoreResult<Option<Enrollment>> {
        let Some(item) = self.get_item(format!("ENR#{id}"), "ENR").await? else {
            return Ok(None);
        };
        let state = get_s(&item, "state")?;
        Ok(Some(Enrollment {
            id: get_s(&item, "id")?,
            account: get_n(&item, "account")?,
            scenario_id: get_s(&item, "scenario_id")?,
            contact_id: get_n(&item, "contact_id")?,
            seq: get_n(&item, "seq")? as u64,
            step_id: opt_s(&item, "step_id"),
            state: EnrollmentState::parse(&state).with_context(|| format!("state {state}"))?,
            created_at: from_millis(get_n(&item, "created_at")?),
        }))
    }

    async fn advance(
        &self,
        id: &str,
        from_seq: u64,
        step_id: Option<&str>,
        state: EnrollmentState,
    ) -> StoreResult<bool> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("ENR#{id}"), "ENR")))
            .condition_expression("attribute_exists(pk) AND seq = :from")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":from", n(from_seq))
            .expression_attribute_values(":to", n(from_seq + 1))
            .expression_attribute_values(":state", s(state.as_str()));
        update = match step_id {
            Some(step) => update
                .update_expression("SET seq = :to, #state = :state, step_id = :step")
                .expression_attribute_values(":step", s(step)),
            None => update.update_expression("SET seq = :to, #state = :state REMOVE step_id"),
        };
        match update.send().await {
            Ok(_) => Ok(true),
            Err(e) if is_conditional(&e) => Ok(false),
            Err(e) => Err(anyhow::Error::from(e).context("DynamoDB UpdateItem enrollment")),
        }
    }
}
