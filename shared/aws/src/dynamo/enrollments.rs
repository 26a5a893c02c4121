//! Enrollments, the re-entry rule and event answers.

use anyhow::Context;
use async_trait::async_trait;
use hookline_core::domain::event::IntakeAnswer;
use hookline_core::domain::ids::entry_of;
use hookline_core::domain::time::{from_millis, to_millis};
use hookline_core::ports::{
    EnrollOutcome, Enrollment, EnrollmentState, EnrollmentStore, StoreResult,
};

use super::*;

/// An enrollment's key: `ENR#{entry}` for one in a scenario entered at most once (its id names
/// the entry: the put that creates it claims the entry), `ENR#{id}` otherwise.
fn enrollment_pk(id: &str) -> String {
    format!("ENR#{}", entry_of(id).unwrap_or(id))
}

fn enrollment_item(e: &Enrollment) -> Item {
    let mut item = key(enrollment_pk(&e.id), "ENR");
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

    /// One conditional put. Without `allow_reentry` the enrollment is keyed by the contact's
    /// entry (its id names it), so that put is also the claim: an item found there with this
    /// very id is a repeat, with another id another event's enrollment — already entered.
    async fn create(&self, e: &Enrollment, allow_reentry: bool) -> StoreResult<EnrollOutcome> {
        anyhow::ensure!(
            allow_reentry || entry_of(&e.id).is_some(),
            "enrollment {}: without re-entry its id must name its entry",
            e.id
        );
        Ok(match self.claim(enrollment_item(e), "id", &e.id).await? {
            Claimed::Now => EnrollOutcome::Created,
            Claimed::Before => EnrollOutcome::AlreadyExists,
            Claimed::ByAnother => EnrollOutcome::AlreadyEntered,
        })
    }

    async fn get(&self, id: &str) -> StoreResult<Option<Enrollment>> {
        let Some(item) = self.get_item(enrollment_pk(id), "ENR").await? else {
            return Ok(None);
        };
        if opt_s(&item, "id").as_deref() != Some(id) {
            return Ok(None); // the entry is another enrollment's
        }
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
            .set_key(Some(key(enrollment_pk(id), "ENR")))
            // the entry's key may hold another enrollment: this one's id is checked too
            .condition_expression("attribute_exists(pk) AND id = :id AND seq = :from")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":id", s(id))
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
