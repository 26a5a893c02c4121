//! The list's reads: a step's newest deliveries, all shards merged (or the failed ones from
//! their index), and the deliveries of given ids in batches.

use aws_sdk_dynamodb::types::KeysAndAttributes;
use hookline_core::domain::delivery::Delivery;
use hookline_core::domain::ids::{MAX_DELIVERY_MS, delivery_id_floor};
use hookline_core::ports::DeliveryFilter;

use super::*;

impl DynamoStore {
    /// The step's `want` newest deliveries older than `cursor` (all shards merged), newest
    /// first: their ids and, when read from the step's partitions, their states.
    pub(super) async fn newest(
        &self,
        f: &DeliveryFilter<'_>,
        cursor: Option<&str>,
        want: usize,
    ) -> anyhow::Result<Vec<(String, Option<Item>)>> {
        let queries = (0..SHARDS).map(|shard| self.list_shard(f, cursor, want, shard));
        let mut found: Vec<(String, Option<Item>)> = futures::future::try_join_all(queries)
            .await?
            .into_iter()
            .flatten()
            .collect();
        found.sort_by(|a, b| b.0.cmp(&a.0));
        found.truncate(want);
        Ok(found)
    }

    /// Up to `want` deliveries of one shard of a step, older than the cursor: the states in
    /// the step's partition, or for `failed` the entries of `gsi2` (keys and `account`).
    pub(super) async fn list_shard(
        &self,
        f: &DeliveryFilter<'_>,
        cursor: Option<&str>,
        want: usize,
        shard: u32,
    ) -> anyhow::Result<Vec<(String, Option<Item>)>> {
        // ids start with the creation time: `since` is a lower bound on them
        let since = match f.since.map(to_millis) {
            // after the year 2527: nothing was created since
            Some(ms) if ms > MAX_DELIVERY_MS => return Ok(Vec::new()),
            Some(ms) => Some(delivery_id_floor(ms)),
            None => None,
        };
        if let (Some(c), Some(from)) = (cursor, &since)
            && c < from.as_str()
        {
            return Ok(Vec::new()); // the previous page reached back past `since`
        }
        let step = step_key(f.scenario_id, f.step_id);
        let (index, pk, sk, partition) = match f.status {
            Some(DeliveryStatus::Failed) => (
                Some("gsi2"),
                "gsi2pk",
                "gsi2sk",
                format!("DLVF#{}#{}#{shard}", f.scenario_id, f.step_id),
            ),
            _ => (None, "pk", "sk", format!("DLVS#{step}#{shard}")),
        };
        let mut found = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let q = self
                .client
                .query()
                .table_name(&self.table)
                .set_index_name(index.map(str::to_string))
                .scan_index_forward(false)
                .limit(want as i32)
                .expression_attribute_names("#pk", pk)
                .expression_attribute_values(":pk", s(&partition))
                .expression_attribute_values(":account", n(f.account))
                .filter_expression("account = :account")
                .set_exclusive_start_key(start.take());
            // strongly consistent on the table (an index cannot be)
            let q = if index.is_none() {
                q.consistent_read(true)
            } else {
                q
            };
            // (a name in the request that no expression uses is refused)
            let q = match (cursor, &since) {
                (None, None) => q,
                _ => q.expression_attribute_names("#sk", sk),
            };
            let q = match (cursor, since.clone()) {
                (Some(c), Some(from)) => q
                    .key_condition_expression("#pk = :pk AND #sk BETWEEN :since AND :cursor")
                    .expression_attribute_values(":since", s(from))
                    .expression_attribute_values(":cursor", s(c)),
                (Some(c), None) => q
                    .key_condition_expression("#pk = :pk AND #sk < :cursor")
                    .expression_attribute_values(":cursor", s(c)),
                (None, Some(from)) => q
                    .key_condition_expression("#pk = :pk AND #sk >= :since")
                    .expression_attribute_values(":since", s(from)),
                (None, None) => q.key_condition_expression("#pk = :pk"),
            };
            let out = q.send().await.context("DynamoDB Query deliveries")?;
            for item in out.items.unwrap_or_default() {
                let id = get_s(&item, sk)?;
                if Some(id.as_str()) == cursor {
                    continue; // BETWEEN includes the cursor: the previous page's last
                }
                found.push((id, index.is_none().then_some(item)));
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() && found.len() < want => start = Some(k),
                _ => return Ok(found),
            }
        }
    }

    /// These deliveries' states, in this order, with strongly consistent `BatchGetItem`s of up
    /// to 100 keys, without their request (the bodies are not read).
    pub(super) async fn deliveries(&self, ids: &[&str]) -> anyhow::Result<Vec<Delivery>> {
        let mut keys: Vec<Item> = ids.iter().filter_map(|id| state_key(id)).collect();
        let mut got: HashMap<String, Item> = HashMap::new();
        while !keys.is_empty() {
            let rest = keys.split_off(keys.len().min(100));
            let batch = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::replace(&mut keys, rest)))
                .consistent_read(true)
                .build()?;
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, batch)
                .send()
                .await
                .context("DynamoDB BatchGetItem deliveries")?;
            for item in out.responses.unwrap_or_default().into_values().flatten() {
                got.insert(get_s(&item, "sk")?, item);
            }
            // keys DynamoDB did not get to this time go round again
            if let Some(left) = out.unprocessed_keys.and_then(|mut u| u.remove(&self.table))
                && !left.keys.is_empty()
            {
                keys.extend(left.keys);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            // a state gone since the index was read (its TTL) is left out
            if let Some(state) = got.get(*id) {
                found.push(delivery_from(state, None)?);
            }
        }
        Ok(found)
    }
}
