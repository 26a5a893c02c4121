//! Scenarios: one item per scenario in its account's partition, and a copy of each active one
//! in its account's partition of active scenarios — what an intake reads (one query for an
//! event, or for a whole batch), so that an account's drafts and archived scenarios cost an
//! event nothing.

use anyhow::{Context, anyhow};
use async_trait::async_trait;
use hookline_core::domain::scenario::{ScenarioDef, ScenarioRecord, ScenarioStatus};
use hookline_core::domain::time::{from_millis, to_millis};
use hookline_core::ports::{BadCursor, Page, ScenarioStore, StoreResult, Version};

use aws_sdk_dynamodb::types::{ConditionCheck, Delete, TransactWriteItem, Update};
use jiff::Timestamp;

use super::*;

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

/// The partition of an account's active scenarios, whatever their trigger: an event needs its
/// trigger's and the time-based ones (its contact's dates may have changed), read with one
/// query — and a batch of events reads it once.
fn active_pk(account: i64) -> String {
    format!("ACTIVE#{account}")
}

/// The copy of an active scenario that [`ScenarioStore::active_for_trigger`] reads.
fn active_copy(r: &ScenarioRecord) -> anyhow::Result<Item> {
    let mut item = scenario_item(r)?;
    item.insert("pk".into(), s(active_pk(r.account)));
    Ok(item)
}

/// The marker of a complete active index in one partition per account. (`ACTIVE-INDEX`, the
/// marker of the copies kept per trigger type before, is not this one: an account that has
/// only that is copied again, once.)
const INDEX_SK: &str = "ACTIVE-INDEX#ACCOUNT";

/// Did a failed condition (not a conflict) cancel this transaction?
fn condition_failed(err: &SdkError<TransactWriteItemsError>) -> bool {
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(e)) => e
            .cancellation_reasons()
            .iter()
            .any(|r| r.code() == Some("ConditionalCheckFailed")),
        _ => false,
    }
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
        let mut writes = vec![self.put(scenario_item(r)?, Some("attribute_not_exists(pk)"))?];
        if r.status == ScenarioStatus::Active {
            writes.push(self.put(active_copy(r)?, None)?);
        }
        match self.transact(writes).await {
            Ok(()) => Ok(()),
            Err(e) if condition_failed(&e) => Err(anyhow!("scenario {} already exists", r.id)),
            Err(e) => Err(anyhow::Error::from(e).context("DynamoDB TransactWriteItems scenario")),
        }
    }

    async fn get(&self, account: i64, id: &str) -> StoreResult<Option<ScenarioRecord>> {
        let item = self
            .get_item(format!("ACCT#{account}"), &format!("SCN#{id}"))
            .await?;
        item.as_ref().map(scenario_from).transpose()
    }

    /// The scenario (a compare-and-set on its status and `updated_at`) and its active copy, in
    /// one transaction: written while it is active, deleted when it stops being active.
    async fn update(&self, r: &ScenarioRecord, version: Version) -> StoreResult<bool> {
        let expected = version.status;
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(
                format!("ACCT#{}", r.account),
                &format!("SCN#{}", r.id),
            )))
            .update_expression(
                "SET #st = :st, trigger_type = :tt, def = :def, secrets = :sec, updated_at = :up",
            )
            .condition_expression("attribute_exists(pk) AND #st = :expected AND updated_at = :was")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":st", s(r.status.as_str()))
            .expression_attribute_values(":tt", s(&r.def.trigger.kind))
            .expression_attribute_values(":def", s(serde_json::to_string(&r.def)?))
            .expression_attribute_values(":sec", s(serde_json::to_string(&r.secrets)?))
            .expression_attribute_values(":up", n(to_millis(r.updated_at)))
            .expression_attribute_values(":expected", s(expected.as_str()))
            .expression_attribute_values(":was", n(to_millis(version.updated_at)))
            .build()?;
        let mut writes = vec![TransactWriteItem::builder().update(update).build()];
        if r.status == ScenarioStatus::Active {
            writes.push(self.put(active_copy(r)?, None)?);
        } else if expected == ScenarioStatus::Active {
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key(active_pk(r.account), &format!("SCN#{}", r.id))))
                .build()?;
            writes.push(TransactWriteItem::builder().delete(delete).build());
        }
        match self.transact(writes).await {
            Ok(()) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(anyhow::Error::from(e).context("DynamoDB TransactWriteItems scenario")),
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

    /// One query of the account's partition of active copies.
    async fn active(&self, account: i64) -> StoreResult<Vec<ScenarioRecord>> {
        self.ensure_active_index(account).await?;
        let mut found = Vec::new();
        for item in self.query_all(active_pk(account), Some("SCN#")).await? {
            let s = scenario_from(&item)?;
            if s.status == ScenarioStatus::Active {
                found.push(s);
            }
        }
        found.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(found)
    }

    /// One query of the account's partition of active copies, these types kept.
    async fn active_for_trigger(
        &self,
        account: i64,
        trigger_type: &str,
    ) -> StoreResult<Vec<ScenarioRecord>> {
        self.active_for_triggers(account, &[trigger_type]).await
    }

    /// One query of the account's partition of active copies, these types kept.
    async fn active_for_triggers(
        &self,
        account: i64,
        trigger_types: &[&str],
    ) -> StoreResult<Vec<ScenarioRecord>> {
        let mut found = self.active(account).await?;
        found.retain(|s| trigger_types.contains(&s.def.trigger.kind.as_str()));
        Ok(found)
    }
}

impl DynamoStore {
    /// Scenarios activated before the active copies existed have none: the first event of an
    /// account (once per process) checks its index marker and, without one, copies each active
    /// scenario (a transaction conditioned on it being active still), then writes the marker.
    async fn ensure_active_index(&self, account: i64) -> anyhow::Result<()> {
        let known = |s: &Self| {
            s.indexed
                .lock()
                .map(|set| set.contains(&account))
                .unwrap_or(false)
        };
        if known(self) {
            return Ok(());
        }
        let _one_at_a_time = self.indexing.lock().await;
        if known(self) {
            return Ok(()); // checked while this one waited
        }
        let pk = format!("ACCT#{account}");
        if self.get_item(pk.clone(), INDEX_SK).await?.is_none() {
            for item in self.query_all(pk.clone(), Some("SCN#")).await? {
                let record = scenario_from(&item)?;
                if record.status != ScenarioStatus::Active {
                    continue;
                }
                let check = ConditionCheck::builder()
                    .table_name(&self.table)
                    .set_key(Some(key(pk.clone(), &format!("SCN#{}", record.id))))
                    .condition_expression("#st = :active")
                    .expression_attribute_names("#st", "status")
                    .expression_attribute_values(":active", s("active"))
                    .build()?;
                let writes = vec![
                    TransactWriteItem::builder().condition_check(check).build(),
                    self.put(active_copy(&record)?, None)?,
                ];
                match self.transact(writes).await {
                    Ok(()) => {}
                    Err(e) if condition_failed(&e) => {} // archived meanwhile: no copy
                    Err(e) => {
                        return Err(anyhow::Error::from(e).context("DynamoDB active index"));
                    }
                }
            }
            let mut marker = key(pk, INDEX_SK);
            marker.insert("at".into(), n(Timestamp::now().as_millisecond()));
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(marker))
                .send()
                .await
                .context("DynamoDB PutItem active index marker")?;
        }
        if let Ok(mut set) = self.indexed.lock() {
            set.insert(account);
        }
        Ok(())
    }
}
