//! Scenarios: one item per scenario in its account's partition.

use anyhow::{Context, anyhow};
use async_trait::async_trait;
use hookline_core::domain::scenario::{ScenarioDef, ScenarioRecord, ScenarioStatus};
use hookline_core::domain::time::{from_millis, to_millis};
use hookline_core::ports::{BadCursor, Page, ScenarioStore, StoreResult};

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
