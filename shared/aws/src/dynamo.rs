//! Every store port on one DynamoDB table.
//!
//! Keys (`pk`, `sk`; index `gsi1` on `gsi1pk`, `gsi1sk`; TTL attribute `expires_at`):
//!
//! | item | pk | sk |
//! |---|---|---|
//! | scenario | `ACCT#{account}` | `SCN#{id}` |
//! | contact snapshot | `CON#{account}#{id}` | `CON` |
//! | event answer (TTL 7 d) | `EVT#{account}#{event id}` | `EVT` |
//! | enrollment | `ENR#{id}` | `ENR` |
//! | entered (no re-entry) | `ENT#{scenario}#{contact}` | `ENT` |
//! | pass marker (TTL 15 d) | `PASS#{key}` | `PASS` |
//! | unique-contact marker | `UNQ#{scenario}#{step}#{contact}` | `UNQ` |
//! | counter shard | `STAT#{scenario}#{shard}` | `{step}` |
//! | delivery (TTL 30 d after the deadline) | `DLV#{id}` | `DLV`; gsi1: `DLVS#{scenario}#{step}#{shard}`, `{created ms}#{id}` |
//! | API key (`revoked_at` once revoked) | `KEY#{sha256}` | `KEY` |
//! | API key, listed | `KEYS` | `{prefix}#{sha256}` |
//!
//! A busy webhook step never becomes a hot key: its counters and its delivery index are spread
//! over [`SHARDS`] partition keys (by delivery id) and summed / merged on read. A pass, its
//! counter increments and its delivery are written in one transaction with conditions, so a
//! repeated message changes nothing; an attempt moves the delivery and its counters in one
//! transaction conditioned on the attempt count.

use std::collections::HashMap;

use anyhow::{Context, anyhow};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use hookline_core::domain::contact::Contact;
use hookline_core::domain::delivery::{Attempt, Delivery, DeliveryStatus, Handoff};
use hookline_core::domain::event::IntakeAnswer;
use hookline_core::domain::scenario::{ScenarioDef, ScenarioRecord, ScenarioStatus};
use hookline_core::domain::time::{from_millis, to_millis};
use hookline_core::ports::{
    ApiKey, BadCursor, ContactStore, DeliveryFilter, DeliveryStore, EnrollOutcome, Enrollment,
    EnrollmentState, EnrollmentStore, KeyStore, Page, Pass, ScenarioStore, StepCounts, StoreResult,
};
use jiff::Timestamp;
use sha2::{Digest, Sha256};

/// Partition keys per webhook step for counters and the delivery index.
pub const SHARDS: u32 = 16;
const DAY_SECS: i64 = 86_400;

type Item = HashMap<String, AttributeValue>;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn key(pk: String, sk: &str) -> Item {
    HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
}

fn get_s(item: &Item, k: &str) -> anyhow::Result<String> {
    match item.get(k) {
        Some(AttributeValue::S(v)) => Ok(v.clone()),
        _ => Err(anyhow!("attribute {k} is missing or not a string")),
    }
}

fn opt_s(item: &Item, k: &str) -> Option<String> {
    match item.get(k) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

fn get_n(item: &Item, k: &str) -> anyhow::Result<i64> {
    match item.get(k) {
        Some(AttributeValue::N(v)) => v.parse().with_context(|| format!("attribute {k}")),
        _ => Err(anyhow!("attribute {k} is missing or not a number")),
    }
}

fn opt_n(item: &Item, k: &str) -> Option<i64> {
    match item.get(k) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

fn shard_of(id: &str) -> u32 {
    let digest = Sha256::digest(id.as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % SHARDS
}

fn ttl(days: i64) -> AttributeValue {
    n(Timestamp::now().as_second() + days * DAY_SECS)
}

/// Was this a failed condition (an item that exists, a stale compare-and-set)?
fn is_conditional<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(err: &SdkError<E>) -> bool {
    err.as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|c| {
            c == "ConditionalCheckFailedException" || c == "TransactionCanceledException"
        })
}

fn cancelled(err: &SdkError<TransactWriteItemsError>) -> bool {
    matches!(
        err.as_service_error(),
        Some(TransactWriteItemsError::TransactionCanceledException(_))
    )
}

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
        }
    }

    async fn get_item(&self, pk: String, sk: &str) -> anyhow::Result<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .context("DynamoDB GetItem")?;
        Ok(out.item)
    }

    /// Puts an item that must not exist yet; `Ok(false)` when it already does.
    async fn put_new(&self, item: Item, what: &str) -> anyhow::Result<bool> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_conditional(&e) => Ok(false),
            Err(e) => Err(anyhow::Error::from(e).context(format!("DynamoDB PutItem {what}"))),
        }
    }

    fn put(&self, item: Item, condition: Option<&str>) -> anyhow::Result<TransactWriteItem> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_string))
            .build()?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Queries one partition, all pages (optionally only sort keys with a prefix).
    async fn query_all(&self, pk: String, sk_prefix: Option<&str>) -> anyhow::Result<Vec<Item>> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .expression_attribute_values(":pk", s(pk.clone()))
                .set_exclusive_start_key(start.take());
            q = match sk_prefix {
                Some(prefix) => q
                    .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                    .expression_attribute_values(":prefix", s(prefix)),
                None => q.key_condition_expression("pk = :pk"),
            };
            let out = q.send().await.context("DynamoDB Query")?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }
}

// ---------------------------------------------------------------- scenarios

fn scenario_item(r: &ScenarioRecord) -> anyhow::Result<Item> {
    let mut item = key(format!("ACCT#{}", r.account), &format!("SCN#{}", r.id));
    item.insert("id".into(), s(&r.id));
    item.insert("account".into(), n(r.account));
    item.insert("status".into(), s(r.status.as_str()));
    item.insert("trigger_type".into(), s(&r.def.trigger.kind));
    item.insert("def".into(), s(serde_json::to_string(&r.def)?));
    item.insert("secrets".into(), s(serde_json::to_string(&r.secrets)?));
    item.insert("created_at".into(), n(to_millis(r.created_at)));
    item.insert("updated_at".into(), n(to_millis(r.updated_at)));
    Ok(item)
}

fn scenario_from(item: &Item) -> anyhow::Result<ScenarioRecord> {
    let status = get_s(item, "status")?;
    Ok(ScenarioRecord {
        id: get_s(item, "id")?,
        account: get_n(item, "account")?,
        status: ScenarioStatus::parse(&status).with_context(|| format!("status {status}"))?,
        def: serde_json::from_str::<ScenarioDef>(&get_s(item, "def")?)?,
        // scenarios stored before signing have none
        secrets: match opt_s(item, "secrets") {
            Some(text) => serde_json::from_str(&text)?,
            None => Default::default(),
        },
        created_at: from_millis(get_n(item, "created_at")?),
        updated_at: from_millis(get_n(item, "updated_at")?),
    })
}

#[async_trait]
impl ScenarioStore for DynamoStore {
    async fn insert(&self, r: &ScenarioRecord) -> StoreResult<()> {
        if !self.put_new(scenario_item(r)?, "scenario").await? {
            return Err(anyhow!("scenario {} already exists", r.id));
        }
        Ok(())
    }

    async fn get(&self, account: i64, id: &str) -> StoreResult<Option<ScenarioRecord>> {
        let item = self
            .get_item(format!("ACCT#{account}"), &format!("SCN#{id}"))
            .await?;
        item.as_ref().map(scenario_from).transpose()
    }

    async fn update(&self, r: &ScenarioRecord, expected: ScenarioStatus) -> StoreResult<bool> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(
                format!("ACCT#{}", r.account),
                &format!("SCN#{}", r.id),
            )))
            .update_expression(
                "SET #st = :st, trigger_type = :tt, def = :def, secrets = :sec, updated_at = :up",
            )
            .condition_expression("attribute_exists(pk) AND #st = :expected")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":st", s(r.status.as_str()))
            .expression_attribute_values(":tt", s(&r.def.trigger.kind))
            .expression_attribute_values(":def", s(serde_json::to_string(&r.def)?))
            .expression_attribute_values(":sec", s(serde_json::to_string(&r.secrets)?))
            .expression_attribute_values(":up", n(to_millis(r.updated_at)))
            .expression_attribute_values(":expected", s(expected.as_str()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_conditional(&e) => Ok(false),
            Err(e) => Err(anyhow::Error::from(e).context("DynamoDB UpdateItem scenario")),
        }
    }

    async fn list(
        &self,
        account: i64,
        cursor: Option<&str>,
        limit: usize,
    ) -> StoreResult<Page<ScenarioRecord>> {
        if let Some(c) = cursor
            && (!c.starts_with("scn_") || c.len() > 100)
        {
            return Err(BadCursor.into());
        }
        let pk = format!("ACCT#{account}");
        let mut start = cursor.map(|c| key(pk.clone(), &format!("SCN#{c}")));
        let mut items = Vec::new();
        while items.len() <= limit {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(pk.clone()))
                .expression_attribute_values(":prefix", s("SCN#"))
                .scan_index_forward(false)
                .limit((limit + 1 - items.len()) as i32)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .context("DynamoDB Query scenarios")?;
            for item in out.items.unwrap_or_default() {
                items.push(scenario_from(&item)?);
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        let next_cursor = (items.len() > limit).then(|| {
            items.truncate(limit);
            items.last().map(|s| s.id.clone()).unwrap_or_default()
        });
        Ok(Page { items, next_cursor })
    }

    async fn active_for_trigger(
        &self,
        account: i64,
        trigger_type: &str,
    ) -> StoreResult<Vec<ScenarioRecord>> {
        let items = self
            .query_all(format!("ACCT#{account}"), Some("SCN#"))
            .await?;
        let mut found = Vec::new();
        for item in &items {
            if opt_s(item, "status").as_deref() == Some("active")
                && opt_s(item, "trigger_type").as_deref() == Some(trigger_type)
            {
                found.push(scenario_from(item)?);
            }
        }
        found.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(found)
    }
}

// ---------------------------------------------------------------- contacts

#[async_trait]
impl ContactStore for DynamoStore {
    async fn put(&self, account: i64, contact: &Contact) -> StoreResult<()> {
        let mut item = key(format!("CON#{account}#{}", contact.id), "CON");
        item.insert(
            "snapshot".into(),
            s(serde_json::to_string(&contact.snapshot)?),
        );
        item.insert("updated_at".into(), n(Timestamp::now().as_millisecond()));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .context("DynamoDB PutItem contact")?;
        Ok(())
    }

    async fn get(&self, account: i64, id: i64) -> StoreResult<Option<Contact>> {
        let Some(item) = self.get_item(format!("CON#{account}#{id}"), "CON").await? else {
            return Ok(None);
        };
        let value: serde_json::Value = serde_json::from_str(&get_s(&item, "snapshot")?)?;
        Contact::parse(value, "contact")
            .map(Some)
            .map_err(|e| anyhow!("stored contact {id}: {e}"))
    }
}

// ---------------------------------------------------------------- enrollments and events

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

    async fn create(&self, e: &Enrollment, allow_reentry: bool) -> StoreResult<EnrollOutcome> {
        let not_exists = Some("attribute_not_exists(pk)");
        let mut writes = vec![self.put(enrollment_item(e), not_exists)?];
        if !allow_reentry {
            let mut entry = key(format!("ENT#{}#{}", e.scenario_id, e.contact_id), "ENT");
            entry.insert("enrollment_id".into(), s(&e.id));
            writes.push(self.put(entry, not_exists)?);
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .send()
            .await;
        match result {
            Ok(_) => Ok(EnrollOutcome::Created),
            Err(err) if cancelled(&err) => {
                // which condition failed: this enrollment exists, or the contact already
                // entered; neither (a conflicting transaction) may pass: retried
                if self.exists(format!("ENR#{}", e.id), "ENR").await? {
                    Ok(EnrollOutcome::AlreadyExists)
                } else if !allow_reentry
                    && self
                        .exists(format!("ENT#{}#{}", e.scenario_id, e.contact_id), "ENT")
                        .await?
                {
                    Ok(EnrollOutcome::AlreadyEntered)
                } else {
                    Err(anyhow!(
                        "creating enrollment {} was cancelled: {err:?}",
                        e.id
                    ))
                }
            }
            Err(err) => {
                Err(anyhow::Error::from(err).context("DynamoDB TransactWriteItems enrollment"))
            }
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

// ---------------------------------------------------------------- deliveries and statistics

fn created_key(d: &Delivery) -> String {
    format!("{:013}#{}", to_millis(d.created_at), d.id)
}

fn delivery_item(d: &Delivery) -> anyhow::Result<Item> {
    let mut item = key(format!("DLV#{}", d.id), "DLV");
    item.insert("id".into(), s(&d.id));
    item.insert("account".into(), n(d.account));
    item.insert("scenario_id".into(), s(&d.scenario_id));
    item.insert("step_id".into(), s(&d.step_id));
    item.insert("contact_id".into(), n(d.contact_id));
    item.insert("handoff".into(), s(serde_json::to_string(&d.handoff)?));
    item.insert("url".into(), s(&d.url));
    item.insert("headers".into(), s(serde_json::to_string(&d.headers)?));
    item.insert("payload".into(), s(&d.payload));
    item.insert("status".into(), s(d.status.as_str()));
    item.insert("created_at".into(), n(to_millis(d.created_at)));
    item.insert("deadline".into(), n(to_millis(d.deadline)));
    if let Some(t) = d.next_attempt_at {
        item.insert("next_attempt_at".into(), n(to_millis(t)));
    }
    let attempts = d
        .attempts
        .iter()
        .map(|a| serde_json::to_string(a).map(s))
        .collect::<Result<Vec<_>, _>>()?;
    item.insert("attempts".into(), AttributeValue::L(attempts));
    item.insert("attempt_count".into(), n(d.attempts.len()));
    item.insert(
        "gsi1pk".into(),
        s(format!(
            "DLVS#{}#{}#{}",
            d.scenario_id,
            d.step_id,
            shard_of(&d.id)
        )),
    );
    item.insert("gsi1sk".into(), s(created_key(d)));
    item.insert(
        "expires_at".into(),
        n(d.deadline.as_second() + 30 * DAY_SECS),
    );
    Ok(item)
}

fn delivery_from(item: &Item) -> anyhow::Result<Delivery> {
    let status = get_s(item, "status")?;
    let attempts = match item.get("attempts") {
        Some(AttributeValue::L(list)) => list
            .iter()
            .map(|v| match v {
                AttributeValue::S(text) => {
                    serde_json::from_str::<Attempt>(text).map_err(anyhow::Error::from)
                }
                _ => Err(anyhow!("an attempt is not a string")),
            })
            .collect::<anyhow::Result<Vec<_>>>()?,
        _ => Vec::new(),
    };
    Ok(Delivery {
        id: get_s(item, "id")?,
        account: get_n(item, "account")?,
        scenario_id: get_s(item, "scenario_id")?,
        step_id: get_s(item, "step_id")?,
        contact_id: get_n(item, "contact_id")?,
        handoff: serde_json::from_str::<Handoff>(&get_s(item, "handoff")?)?,
        url: get_s(item, "url")?,
        headers: serde_json::from_str(&get_s(item, "headers")?)?,
        payload: get_s(item, "payload")?,
        status: DeliveryStatus::parse(&status).with_context(|| format!("status {status}"))?,
        created_at: from_millis(get_n(item, "created_at")?),
        deadline: from_millis(get_n(item, "deadline")?),
        next_attempt_at: opt_n(item, "next_attempt_at").map(from_millis),
        attempts,
    })
}

impl DynamoStore {
    /// `ADD` to one counter shard of a step.
    fn count(
        &self,
        account: i64,
        scenario: &str,
        step: &str,
        shard: u32,
        adds: &[(&str, i64)],
    ) -> anyhow::Result<TransactWriteItem> {
        let mut expr = Vec::new();
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(format!("STAT#{scenario}#{shard}"), step)))
            .expression_attribute_values(":account", n(account));
        for (i, (field, delta)) in adds.iter().enumerate() {
            expr.push(format!("{field} :d{i}"));
            update = update.expression_attribute_values(format!(":d{i}"), n(delta));
        }
        let update = update
            .update_expression(format!("SET account = :account ADD {}", expr.join(", ")))
            .build()?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    async fn exists(&self, pk: String, sk: &str) -> anyhow::Result<bool> {
        Ok(self.get_item(pk, sk).await?.is_some())
    }
}

#[async_trait]
impl DeliveryStore for DynamoStore {
    async fn record_pass(&self, pass: &Pass, delivery: Option<&Delivery>) -> StoreResult<bool> {
        let not_exists = Some("attribute_not_exists(pk)");
        // a webhook pass counts on its delivery's shard, where its attempts will count too
        let shard = shard_of(delivery.map(|d| d.id.as_str()).unwrap_or(&pass.key));
        let pass_pk = format!("PASS#{}", pass.key);
        let unique_pk = format!(
            "UNQ#{}#{}#{}",
            pass.scenario_id, pass.step_id, pass.contact_id
        );
        for first_visit in [true, false] {
            let mut marker = key(pass_pk.clone(), "PASS");
            marker.insert("expires_at".into(), ttl(15));
            let mut writes = vec![self.put(marker, not_exists)?];
            let mut adds = vec![("passes", 1)];
            if first_visit {
                writes.push(self.put(key(unique_pk.clone(), "UNQ"), not_exists)?);
                adds.push(("unique_contacts", 1));
            }
            if let Some(d) = delivery {
                writes.push(self.put(delivery_item(d)?, not_exists)?);
                adds.push(("pending", 1));
            }
            writes.push(self.count(
                pass.account,
                &pass.scenario_id,
                &pass.step_id,
                shard,
                &adds,
            )?);
            match self
                .client
                .transact_write_items()
                .set_transact_items(Some(writes))
                .send()
                .await
            {
                Ok(_) => return Ok(true),
                Err(err) if cancelled(&err) => {
                    if self.exists(pass_pk.clone(), "PASS").await? {
                        return Ok(false); // recorded before: a repeated message
                    }
                    if !first_visit || !self.exists(unique_pk.clone(), "UNQ").await? {
                        return Err(anyhow!(
                            "recording pass {} was cancelled: {err:?}",
                            pass.key
                        ));
                    }
                    // the contact passed this step before: record it without counting it anew
                }
                Err(err) => {
                    return Err(
                        anyhow::Error::from(err).context("DynamoDB TransactWriteItems pass")
                    );
                }
            }
        }
        Err(anyhow!("recording pass {} did not settle", pass.key))
    }

    async fn get(&self, id: &str) -> StoreResult<Option<Delivery>> {
        self.get_item(format!("DLV#{id}"), "DLV")
            .await?
            .as_ref()
            .map(delivery_from)
            .transpose()
    }

    async fn record_attempt(
        &self,
        d: &Delivery,
        attempt: Option<&Attempt>,
        status: DeliveryStatus,
        next_attempt_at: Option<Timestamp>,
    ) -> StoreResult<bool> {
        let mut sets = vec!["attempt_count = :count", "#st = :status"];
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(format!("DLV#{}", d.id), "DLV")))
            .condition_expression(
                "attribute_exists(pk) AND attempt_count = :before AND #st = :pending",
            )
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":before", n(d.attempts.len()))
            .expression_attribute_values(":pending", s("pending"))
            .expression_attribute_values(":status", s(status.as_str()))
            .expression_attribute_values(
                ":count",
                n(d.attempts.len() + usize::from(attempt.is_some())),
            );
        if let Some(a) = attempt {
            sets.push("attempts = list_append(attempts, :attempt)");
            update = update.expression_attribute_values(
                ":attempt",
                AttributeValue::L(vec![s(serde_json::to_string(a)?)]),
            );
        }
        let expression = match next_attempt_at {
            Some(t) => {
                sets.push("next_attempt_at = :next");
                update = update.expression_attribute_values(":next", n(to_millis(t)));
                format!("SET {}", sets.join(", "))
            }
            None => format!("SET {} REMOVE next_attempt_at", sets.join(", ")),
        };
        let update = update.update_expression(expression).build()?;
        let mut writes = vec![TransactWriteItem::builder().update(update).build()];
        let settled = match status {
            DeliveryStatus::Pending => None,
            DeliveryStatus::Accepted => Some("accepted"),
            DeliveryStatus::Failed => Some("failed"),
        };
        if let Some(field) = settled {
            writes.push(self.count(
                d.account,
                &d.scenario_id,
                &d.step_id,
                shard_of(&d.id),
                &[("pending", -1), (field, 1)],
            )?);
        }
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(err) if cancelled(&err) => {
                // lost the compare-and-set (someone recorded this attempt), or a conflicting
                // transaction cancelled ours: only the first is final
                match DeliveryStore::get(self, &d.id).await? {
                    Some(now)
                        if now.status == DeliveryStatus::Pending
                            && now.attempts.len() == d.attempts.len() =>
                    {
                        Err(anyhow!(
                            "recording an attempt of {} was cancelled: {err:?}",
                            d.id
                        ))
                    }
                    _ => Ok(false),
                }
            }
            Err(err) => {
                Err(anyhow::Error::from(err).context("DynamoDB TransactWriteItems attempt"))
            }
        }
    }

    async fn record_resend(
        &self,
        d: &Delivery,
        attempt: &Attempt,
        accepted: bool,
    ) -> StoreResult<bool> {
        let status = if accepted { "accepted" } else { "failed" };
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(format!("DLV#{}", d.id), "DLV")))
            .condition_expression(
                "attribute_exists(pk) AND attempt_count = :before AND #st = :failed",
            )
            .update_expression(
                "SET attempt_count = :count, #st = :status, attempts = list_append(attempts, :attempt)",
            )
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":before", n(d.attempts.len()))
            .expression_attribute_values(":failed", s("failed"))
            .expression_attribute_values(":status", s(status))
            .expression_attribute_values(":count", n(d.attempts.len() + 1))
            .expression_attribute_values(
                ":attempt",
                AttributeValue::L(vec![s(serde_json::to_string(attempt)?)]),
            )
            .build()?;
        let mut writes = vec![TransactWriteItem::builder().update(update).build()];
        if accepted {
            writes.push(self.count(
                d.account,
                &d.scenario_id,
                &d.step_id,
                shard_of(&d.id),
                &[("failed", -1), ("accepted", 1)],
            )?);
        }
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(err) if cancelled(&err) => match DeliveryStore::get(self, &d.id).await? {
                // a conflicting transaction cancelled ours: it may pass
                Some(now)
                    if now.status == DeliveryStatus::Failed
                        && now.attempts.len() == d.attempts.len() =>
                {
                    Err(anyhow!(
                        "recording a resend of {} was cancelled: {err:?}",
                        d.id
                    ))
                }
                _ => Ok(false), // recorded by another worker
            },
            Err(err) => Err(anyhow::Error::from(err).context("DynamoDB TransactWriteItems resend")),
        }
    }

    async fn list(&self, f: &DeliveryFilter<'_>) -> StoreResult<Page<Delivery>> {
        if let Some(c) = f.cursor
            && !(c.len() > 14
                && c.as_bytes()[13] == b'#'
                && c[..13].bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(BadCursor.into());
        }
        // newest first across the shards: the first limit+1 of each, merged
        let queries = (0..SHARDS).map(|shard| self.list_shard(f, shard));
        let mut items: Vec<(String, Delivery)> = futures::future::try_join_all(queries)
            .await?
            .into_iter()
            .flatten()
            .collect();
        items.sort_by(|a, b| b.0.cmp(&a.0));
        let more = items.len() > f.limit;
        items.truncate(f.limit);
        let next_cursor = if more {
            items.last().map(|(k, _)| k.clone())
        } else {
            None
        };
        Ok(Page {
            items: items.into_iter().map(|(_, d)| d).collect(),
            next_cursor,
        })
    }

    async fn step_counts(&self, account: i64, scenario_id: &str) -> StoreResult<Vec<StepCounts>> {
        let reads =
            (0..SHARDS).map(|shard| self.query_all(format!("STAT#{scenario_id}#{shard}"), None));
        let shards = futures::future::try_join_all(reads).await?;
        let mut counts: Vec<StepCounts> = Vec::new();
        for item in shards.iter().flatten() {
            if opt_n(item, "account") != Some(account) {
                continue;
            }
            let step = get_s(item, "sk")?;
            let entry = match counts.iter_mut().position(|c| c.step_id == step) {
                Some(i) => &mut counts[i],
                None => {
                    counts.push(StepCounts {
                        step_id: step,
                        ..StepCounts::default()
                    });
                    counts.last_mut().context("just pushed")?
                }
            };
            let get = |k: &str| opt_n(item, k).unwrap_or(0).max(0) as u64;
            entry.passes += get("passes");
            entry.unique_contacts += get("unique_contacts");
            entry.accepted += get("accepted");
            entry.pending += get("pending");
            entry.failed += get("failed");
        }
        Ok(counts)
    }
}

impl DynamoStore {
    /// Up to `limit + 1` deliveries of one shard of a step's index, older than the cursor.
    async fn list_shard(
        &self,
        f: &DeliveryFilter<'_>,
        shard: u32,
    ) -> anyhow::Result<Vec<(String, Delivery)>> {
        let mut found = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .index_name("gsi1")
                .scan_index_forward(false)
                .limit((f.limit + 1) as i32)
                .expression_attribute_values(
                    ":pk",
                    s(format!("DLVS#{}#{}#{shard}", f.scenario_id, f.step_id)),
                )
                .expression_attribute_values(":account", n(f.account))
                .set_exclusive_start_key(start.take());
            let mut filter = vec!["account = :account"];
            q = match f.cursor {
                Some(c) => q
                    .key_condition_expression("gsi1pk = :pk AND gsi1sk < :cursor")
                    .expression_attribute_values(":cursor", s(c)),
                None => q.key_condition_expression("gsi1pk = :pk"),
            };
            if let Some(status) = f.status {
                filter.push("#st = :status");
                q = q
                    .expression_attribute_names("#st", "status")
                    .expression_attribute_values(":status", s(status.as_str()));
            }
            let out = q
                .filter_expression(filter.join(" AND "))
                .send()
                .await
                .context("DynamoDB Query deliveries")?;
            for item in out.items.unwrap_or_default() {
                found.push((get_s(&item, "gsi1sk")?, delivery_from(&item)?));
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() && found.len() <= f.limit => start = Some(k),
                _ => return Ok(found),
            }
        }
    }
}

// ---------------------------------------------------------------- API keys

#[async_trait]
impl KeyStore for DynamoStore {
    /// The key and its listing entry, in one transaction.
    async fn insert(&self, k: &ApiKey) -> StoreResult<bool> {
        let mut item = key(format!("KEY#{}", k.hash), "KEY");
        item.insert("account".into(), n(k.account));
        item.insert("created_at".into(), n(to_millis(k.created_at)));
        item.insert("prefix".into(), s(&k.prefix));
        let mut listed = key("KEYS".into(), &format!("{}#{}", k.prefix, k.hash));
        listed.insert("hash".into(), s(&k.hash));
        listed.insert("prefix".into(), s(&k.prefix));
        listed.insert("account".into(), n(k.account));
        listed.insert("created_at".into(), n(to_millis(k.created_at)));
        if let Some(at) = k.revoked_at {
            item.insert("revoked_at".into(), n(to_millis(at)));
            listed.insert("revoked_at".into(), n(to_millis(at)));
        }
        let not_exists = Some("attribute_not_exists(pk)");
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(vec![
                self.put(item, not_exists)?,
                self.put(listed, None)?,
            ]))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err)
                if cancelled(&err) && self.exists(format!("KEY#{}", k.hash), "KEY").await? =>
            {
                Ok(false)
            }
            Err(err) => Err(anyhow::Error::from(err).context("DynamoDB TransactWriteItems key")),
        }
    }

    async fn account_for(&self, key_hash: &str) -> StoreResult<Option<i64>> {
        let item = self.get_item(format!("KEY#{key_hash}"), "KEY").await?;
        match item {
            Some(i) if !i.contains_key("revoked_at") => Ok(Some(get_n(&i, "account")?)),
            _ => Ok(None),
        }
    }

    async fn list(&self) -> StoreResult<Vec<ApiKey>> {
        self.query_all("KEYS".into(), None)
            .await?
            .iter()
            .map(|i| {
                Ok(ApiKey {
                    hash: get_s(i, "hash")?,
                    prefix: get_s(i, "prefix")?,
                    account: get_n(i, "account")?,
                    created_at: from_millis(get_n(i, "created_at")?),
                    revoked_at: opt_n(i, "revoked_at").map(from_millis),
                })
            })
            .collect()
    }

    /// The key item first (what [`KeyStore::account_for`] reads), then its listing entry.
    async fn revoke(&self, key_hash: &str, at: Timestamp) -> StoreResult<bool> {
        let Some(item) = self.get_item(format!("KEY#{key_hash}"), "KEY").await? else {
            return Ok(false);
        };
        let prefix = get_s(&item, "prefix").unwrap_or_default();
        if let Some(earlier) = opt_n(&item, "revoked_at") {
            // revoked before; a crash may have left its listing entry behind
            self.mark_listed_revoked(&prefix, key_hash, earlier).await?;
            return Ok(false);
        }
        let revoked = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("KEY#{key_hash}")))
            .key("sk", s("KEY"))
            .update_expression("SET revoked_at = :at")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(revoked_at)")
            .expression_attribute_values(":at", n(to_millis(at)))
            .send()
            .await;
        match revoked {
            Ok(_) => {}
            Err(e) if is_conditional(&e) => return Ok(false),
            Err(e) => return Err(anyhow::Error::from(e).context("DynamoDB UpdateItem key")),
        }
        self.mark_listed_revoked(&prefix, key_hash, to_millis(at))
            .await?;
        Ok(true)
    }
}

impl DynamoStore {
    async fn mark_listed_revoked(
        &self,
        prefix: &str,
        key_hash: &str,
        at_ms: i64,
    ) -> anyhow::Result<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s("KEYS"))
            .key("sk", s(format!("{prefix}#{key_hash}")))
            .update_expression("SET revoked_at = :at")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":at", n(at_ms))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_conditional(&e) => Ok(()), // no listing entry: nothing to mark
            Err(e) => Err(anyhow::Error::from(e).context("DynamoDB UpdateItem key listing")),
        }
    }
}
