//! Occurrences of time-based triggers: one item per occurrence, under its minute's bucket,
//! spread over [`OCC_SHARDS`] partitions so that a popular minute (09:00 everywhere) is never
//! one hot key. No cloud resource per contact: the one-minute tick reads the buckets.

use anyhow::Context;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{DeleteRequest, PutRequest, WriteRequest};
use hookline_core::ports::{
    BadCursor, OccurrenceStore, Page, Scheduled, StoreResult, SweepState, minute_of,
};
use sha2::{Digest, Sha256};

use super::*;

/// Partitions per minute.
pub const OCC_SHARDS: u32 = 4;
/// An occurrence item is kept this long after its minute (a tick may be days late).
const OCC_TTL_DAYS: i64 = 30;

fn occ_shard(scenario_id: &str, contact_id: i64) -> u32 {
    let digest = Sha256::digest(format!("{scenario_id}#{contact_id}").as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % OCC_SHARDS
}

fn occ_key(o: &Scheduled) -> Item {
    key(
        format!(
            "OCC#{}#{}",
            minute_of(o.at),
            occ_shard(&o.scenario_id, o.contact_id)
        ),
        &format!(
            "{}#{}#{}#{}",
            o.account, o.scenario_id, o.contact_id, o.date
        ),
    )
}

fn key_text(k: &Item) -> String {
    format!(
        "{}|{}",
        opt_s(k, "pk").unwrap_or_default(),
        opt_s(k, "sk").unwrap_or_default()
    )
}

fn read(item: &Item) -> anyhow::Result<Scheduled> {
    Ok(Scheduled {
        account: get_n(item, "account")?,
        scenario_id: get_s(item, "scenario_id")?,
        contact_id: get_n(item, "contact_id")?,
        date: get_s(item, "date")?.parse().context("occurrence date")?,
        at: Timestamp::from_millisecond(get_n(item, "at")?)?,
    })
}

impl DynamoStore {
    /// `BatchWriteItem` in chunks of 25, unprocessed items sent again.
    async fn batch_write(&self, mut writes: Vec<WriteRequest>) -> anyhow::Result<()> {
        while !writes.is_empty() {
            let rest = writes.split_off(writes.len().min(25));
            let mut chunk = std::mem::replace(&mut writes, rest);
            let mut pause = std::time::Duration::from_millis(20);
            while !chunk.is_empty() {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, chunk)
                    .send()
                    .await
                    .context("DynamoDB BatchWriteItem")?;
                chunk = out
                    .unprocessed_items
                    .and_then(|mut m| m.remove(&self.table))
                    .unwrap_or_default();
                if !chunk.is_empty() {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_secs(1));
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl OccurrenceStore for DynamoStore {
    async fn schedule(&self, items: &[Scheduled]) -> StoreResult<()> {
        // one request may not name an item twice
        let unique: std::collections::BTreeMap<String, &Scheduled> =
            items.iter().map(|o| (key_text(&occ_key(o)), o)).collect();
        let mut writes = Vec::with_capacity(unique.len());
        for o in unique.into_values() {
            let mut item = occ_key(o);
            item.insert("account".into(), n(o.account));
            item.insert("scenario_id".into(), s(o.scenario_id.clone()));
            item.insert("contact_id".into(), n(o.contact_id));
            item.insert("date".into(), s(o.date.to_string()));
            item.insert("at".into(), n(o.at.as_millisecond()));
            item.insert(
                "expires_at".into(),
                n(o.at.as_second() + OCC_TTL_DAYS * DAY_SECS),
            );
            writes.push(
                WriteRequest::builder()
                    .put_request(PutRequest::builder().set_item(Some(item)).build()?)
                    .build(),
            );
        }
        self.batch_write(writes).await
    }

    async fn cancel(&self, items: &[Scheduled]) -> StoreResult<()> {
        let keys: std::collections::BTreeMap<String, Item> = items
            .iter()
            .map(|o| (key_text(&occ_key(o)), occ_key(o)))
            .collect();
        let mut writes = Vec::with_capacity(keys.len());
        for k in keys.into_values() {
            writes.push(
                WriteRequest::builder()
                    .delete_request(DeleteRequest::builder().set_key(Some(k)).build()?)
                    .build(),
            );
        }
        self.batch_write(writes).await
    }

    /// The minute's shards one after the other, a Query page at a time; the cursor is the
    /// shard and the last sort key read in it (`2:` + key, or `2:` to start shard 2).
    async fn in_minute(
        &self,
        minute: i64,
        cursor: Option<&str>,
        limit: usize,
    ) -> StoreResult<Page<Scheduled>> {
        let (mut shard, mut after) = match cursor {
            None => (0, None),
            Some(c) => {
                let (shard, sk) = c.split_once(':').ok_or(BadCursor)?;
                let shard: u32 = shard.parse().map_err(|_| BadCursor)?;
                if shard >= OCC_SHARDS {
                    return Err(BadCursor.into());
                }
                (shard, (!sk.is_empty()).then(|| sk.to_string()))
            }
        };
        let limit = limit.clamp(1, 1_000);
        let mut items = Vec::new();
        loop {
            let pk = format!("OCC#{minute}#{shard}");
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(pk.clone()))
                .set_exclusive_start_key(after.take().map(|sk| key(pk.clone(), &sk)))
                .limit((limit - items.len()) as i32)
                .send()
                .await
                .context("DynamoDB Query occurrences")?;
            for item in out.items.unwrap_or_default() {
                match read(&item) {
                    Ok(o) => items.push(o),
                    Err(e) => {
                        tracing::warn!(pk = %pk, error = %e, "an unreadable occurrence item: skipped")
                    }
                }
            }
            let last = out
                .last_evaluated_key
                .filter(|k| !k.is_empty())
                .and_then(|k| opt_s(&k, "sk"));
            if let Some(sk) = last {
                return Ok(Page {
                    items,
                    next_cursor: Some(format!("{shard}:{sk}")),
                });
            }
            shard += 1;
            if shard >= OCC_SHARDS {
                return Ok(Page {
                    items,
                    next_cursor: None,
                });
            }
            if items.len() >= limit {
                return Ok(Page {
                    items,
                    next_cursor: Some(format!("{shard}:")),
                });
            }
        }
    }

    async fn swept(&self) -> StoreResult<Option<SweepState>> {
        let Some(item) = self.get_item("SWEEP".into(), "SWEEP").await? else {
            return Ok(None);
        };
        Ok(opt_n(&item, "minute").map(|minute| SweepState {
            minute,
            cursor: opt_s(&item, "cursor"),
        }))
    }

    /// Never back to an earlier minute (a conditional update: two ticks racing never undo
    /// each other's minutes; within a minute the later write's cursor wins, which at worst
    /// queues a page again).
    async fn set_swept(&self, state: &SweepState) -> StoreResult<()> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key("SWEEP".into(), "SWEEP")))
            .condition_expression("attribute_not_exists(#m) OR #m <= :m")
            .expression_attribute_names("#m", "minute")
            .expression_attribute_values(":m", n(state.minute));
        let update = match &state.cursor {
            Some(cursor) => update
                .update_expression("SET #m = :m, #c = :c")
                .expression_attribute_names("#c", "cursor")
                .expression_attribute_values(":c", s(cursor.clone())),
            None => update
                .update_expression("SET #m = :m REMOVE #c")
                .expression_attribute_names("#c", "cursor"),
        };
        match update.send().await {
            Ok(_) => Ok(()),
            Err(e) if is_conditional(&e) => Ok(()),
            Err(e) => Err(anyhow::Error::from(e).context("DynamoDB UpdateItem sweep")),
        }
    }
}
