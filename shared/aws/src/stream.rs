//! Statistics read up to date: before `stats-query` reads a scenario's counters it applies
//! whatever the table's stream holds beyond each shard's checkpoint, the same way (and with
//! the same compare-and-set) as its stream handler. The event source mapping keeps the
//! counters current in the background; this makes a reading include every write made before
//! it — read-your-writes — even when the mapping lags, is paused, or is not there.

use anyhow::Context;
use async_trait::async_trait;
use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use hookline_core::domain::delivery::{Attempt, Delivery, DeliveryStatus};
use hookline_core::ports::{DeliveryFilter, DeliveryStore, Page, Pass, StepCounts, StoreResult};
use jiff::Timestamp;
use serde_json::{Value, json};

use crate::DynamoStore;

/// The delivery store of `stats-query`: counters brought up to date from the stream first.
pub struct CountersUpToDate {
    pub store: DynamoStore,
    pub streams: aws_sdk_dynamodbstreams::Client,
    stream_arn: tokio::sync::OnceCell<String>,
}

impl CountersUpToDate {
    pub fn new(store: DynamoStore, streams: aws_sdk_dynamodbstreams::Client) -> Self {
        CountersUpToDate {
            store,
            streams,
            stream_arn: tokio::sync::OnceCell::new(),
        }
    }

    /// Applies every stream record beyond its shard's checkpoint; how many counted.
    pub async fn catch_up(&self) -> anyhow::Result<usize> {
        let arn = self
            .stream_arn
            .get_or_try_init(|| self.store.stream_arn())
            .await?;
        let mut counted = 0;
        let mut start: Option<String> = None;
        loop {
            let described = self
                .streams
                .describe_stream()
                .stream_arn(arn)
                .set_exclusive_start_shard_id(start.take())
                .send()
                .await
                .context("DynamoDB Streams DescribeStream")?;
            let Some(d) = described.stream_description else {
                return Ok(counted);
            };
            for shard in d.shards() {
                let Some(id) = shard.shard_id() else { continue };
                let done = self.store.stream_checkpoint(id).await?;
                let ending = shard
                    .sequence_number_range()
                    .and_then(|r| r.ending_sequence_number());
                if let (Some(done), Some(end)) = (&done, ending)
                    && *done >= format!("{end:0>40}")
                {
                    continue; // a closed shard, applied to its end
                }
                counted += self.shard(arn, id, done.as_deref()).await?;
            }
            match d.last_evaluated_shard_id {
                Some(next) => start = Some(next),
                None => return Ok(counted),
            }
        }
    }

    /// One shard, from just after `done` (a padded sequence number) to its end for now.
    async fn shard(&self, arn: &str, id: &str, done: Option<&str>) -> anyhow::Result<usize> {
        let request = self
            .streams
            .get_shard_iterator()
            .stream_arn(arn)
            .shard_id(id);
        let request = match done {
            Some(seq) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .sequence_number(seq.trim_start_matches('0')),
            None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        let mut iterator = request
            .send()
            .await
            .context("DynamoDB Streams GetShardIterator")?
            .shard_iterator;
        let mut counted = 0;
        while let Some(it) = iterator {
            let out = self
                .streams
                .get_records()
                .shard_iterator(it)
                .limit(1000)
                .send()
                .await
                .context("DynamoDB Streams GetRecords")?;
            let records: Vec<Value> = out.records().iter().map(record_json).collect();
            if records.is_empty() {
                break; // nothing more for now (an open shard hands out empty pages at its end)
            }
            counted += self.store.apply_stream(id, &records).await?;
            iterator = out.next_shard_iterator;
        }
        Ok(counted)
    }
}

/// A stream record in the shape Lambda hands it to a function (what the handler reads).
fn record_json(r: &Record) -> Value {
    let image = |i: Option<&std::collections::HashMap<String, AttributeValue>>| {
        i.map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), attribute_json(v)))
                .collect::<serde_json::Map<_, _>>()
        })
    };
    let d = r.dynamodb();
    json!({
        "eventName": r.event_name().map(|e| e.as_str()),
        "dynamodb": {
            "SequenceNumber": d.and_then(|d| d.sequence_number()),
            "NewImage": image(d.and_then(|d| d.new_image.as_ref())),
            "OldImage": image(d.and_then(|d| d.old_image.as_ref())),
        },
    })
}

fn attribute_json(v: &AttributeValue) -> Value {
    match v {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(_) => json!({ "NULL": true }),
        AttributeValue::L(l) => json!({ "L": l.iter().map(attribute_json).collect::<Vec<_>>() }),
        AttributeValue::M(m) => json!({ "M": m
            .iter()
            .map(|(k, v)| (k.clone(), attribute_json(v)))
            .collect::<serde_json::Map<_, _>>() }),
        _ => json!({}), // sets and binaries: nothing the counters read
    }
}

#[async_trait]
impl DeliveryStore for CountersUpToDate {
    async fn record_pass(&self, pass: &Pass, d: Option<&Delivery>) -> StoreResult<bool> {
        self.store.record_pass(pass, d).await
    }
    async fn get(&self, id: &str) -> StoreResult<Option<Delivery>> {
        DeliveryStore::get(&self.store, id).await
    }
    async fn record_attempt(
        &self,
        d: &Delivery,
        a: Option<&Attempt>,
        s: DeliveryStatus,
        next: Option<Timestamp>,
    ) -> StoreResult<bool> {
        self.store.record_attempt(d, a, s, next).await
    }
    async fn record_resend(&self, d: &Delivery, a: &Attempt, ok: bool) -> StoreResult<bool> {
        self.store.record_resend(d, a, ok).await
    }
    async fn list(&self, f: &DeliveryFilter<'_>) -> StoreResult<Page<Delivery>> {
        DeliveryStore::list(&self.store, f).await
    }
    async fn step_counts(&self, account: i64, scenario: &str) -> StoreResult<Vec<StepCounts>> {
        self.catch_up().await?;
        self.store.step_counts(account, scenario).await
    }
}
