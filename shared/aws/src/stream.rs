//! Statistics read up to date: before `stats-query` reads a scenario's counters it applies
//! whatever the table's stream holds beyond each shard's checkpoint, the same way (and with
//! the same compare-and-set) as its stream handler. The event source mapping keeps the
//! counters current in the background; this makes a reading include every write made before
//! it — read-your-writes — even when the mapping lags, is paused, or is not there. It is best
//! effort: within [`CATCH_UP_BUDGET`], and a reading that cannot catch up (the budget spent,
//! the Streams API failing or throttling) shows the counters as stored, which the mapping keeps
//! about a second behind; and a write not yet on the stream (it takes a moment to get there)
//! is not in it.

use anyhow::Context;
use async_trait::async_trait;
use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, Shard, ShardIteratorType};
use hookline_core::domain::delivery::{Attempt, Delivery, DeliveryStatus};
use hookline_core::ports::{DeliveryFilter, DeliveryStore, Page, Pass, StepCounts, StoreResult};
use jiff::Timestamp;
use serde_json::{Value, json};

use crate::DynamoStore;

/// The longest a statistics read waits for the counters to catch up.
pub const CATCH_UP_BUDGET: std::time::Duration = std::time::Duration::from_millis(1500);

/// Empty pages read from an open shard before it counts as read for now (an open shard may
/// hand out an empty page before its newest records).
const EMPTY_PAGES: usize = 3;

/// The delivery store of `stats-query`: counters brought up to date from the stream first.
pub struct CountersUpToDate {
    pub store: DynamoStore,
    pub streams: aws_sdk_dynamodbstreams::Client,
    stream_arn: tokio::sync::OnceCell<String>,
    budget: std::time::Duration,
}

impl CountersUpToDate {
    pub fn new(store: DynamoStore, streams: aws_sdk_dynamodbstreams::Client) -> Self {
        CountersUpToDate {
            store,
            streams,
            stream_arn: tokio::sync::OnceCell::new(),
            budget: CATCH_UP_BUDGET,
        }
    }

    /// With another time budget than [`CATCH_UP_BUDGET`] (a test on a slow emulator).
    pub fn with_budget(mut self, budget: std::time::Duration) -> Self {
        self.budget = budget;
        self
    }

    /// Applies every stream record beyond its shard's checkpoint, parents before their
    /// children (as Lambda reads them: a delivery's later change may sit in a child shard);
    /// how many counted.
    pub async fn catch_up(&self) -> anyhow::Result<usize> {
        let arn = self
            .stream_arn
            .get_or_try_init(|| self.store.stream_arn())
            .await?;
        let mut shards: Vec<Shard> = Vec::new();
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
                break;
            };
            shards.extend(d.shards.unwrap_or_default());
            match d.last_evaluated_shard_id {
                Some(next) => start = Some(next),
                None => break,
            }
        }
        let mut counted = 0;
        for shard in parents_first(shards) {
            let Some(id) = shard.shard_id() else { continue };
            let done = self.store.stream_checkpoint(id).await?;
            let ending = shard
                .sequence_number_range()
                .and_then(|r| r.ending_sequence_number());
            if let (Some(done), Some(end)) = (&done, ending)
                && *done >= format!("{end:0>40}")
            {
                continue; // a closed shard, read to its end
            }
            counted += self.shard(arn, id, done.as_deref()).await?;
        }
        Ok(counted)
    }

    /// One shard, from just after `done` (a padded sequence number) to its end for now.
    async fn shard(&self, arn: &str, id: &str, done: Option<&str>) -> anyhow::Result<usize> {
        let request = self
            .streams
            .get_shard_iterator()
            .stream_arn(arn)
            .shard_id(id);
        let from_start = request
            .clone()
            .shard_iterator_type(ShardIteratorType::TrimHorizon);
        let answer = match done {
            Some(seq) => {
                let after = request
                    .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                    .sequence_number(seq.trim_start_matches('0'))
                    .send()
                    .await;
                match answer_or_trimmed(after) {
                    Some(a) => a,
                    None => {
                        // the checkpoint is older than the stream keeps (24 h): what lay
                        // between is gone; go on from the oldest record kept
                        tracing::error!(
                            shard = id,
                            "stream records were trimmed before they were counted"
                        );
                        from_start.send().await
                    }
                }
            }
            None => from_start.send().await,
        };
        let mut iterator = answer
            .context("DynamoDB Streams GetShardIterator")?
            .shard_iterator;
        let (mut counted, mut empty) = (0, 0);
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
            iterator = out.next_shard_iterator;
            if records.is_empty() {
                empty += 1;
                if empty == EMPTY_PAGES {
                    break; // nothing more for now (an open shard's end)
                }
                continue;
            }
            counted += self.store.apply_stream(id, &records).await?;
        }
        Ok(counted)
    }
}

type IteratorAnswer = Result<
    aws_sdk_dynamodbstreams::operation::get_shard_iterator::GetShardIteratorOutput,
    aws_sdk_dynamodbstreams::error::SdkError<
        aws_sdk_dynamodbstreams::operation::get_shard_iterator::GetShardIteratorError,
    >,
>;

/// The answer, or `None` when the sequence number asked for was trimmed from the stream.
fn answer_or_trimmed(answer: IteratorAnswer) -> Option<IteratorAnswer> {
    use aws_sdk_dynamodbstreams::operation::get_shard_iterator::GetShardIteratorError;
    match &answer {
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(GetShardIteratorError::TrimmedDataAccessException(_))
            ) =>
        {
            None
        }
        _ => Some(answer),
    }
}

/// The shards in an order where a parent comes before its children.
fn parents_first(mut shards: Vec<Shard>) -> Vec<Shard> {
    let mut ordered: Vec<Shard> = Vec::with_capacity(shards.len());
    while !shards.is_empty() {
        let ready = |s: &Shard| {
            s.parent_shard_id()
                .is_none_or(|p| !shards.iter().any(|o| o.shard_id() == Some(p)))
        };
        let (now, later): (Vec<Shard>, Vec<Shard>) = shards.iter().cloned().partition(ready);
        if now.is_empty() {
            ordered.extend(later); // a cycle cannot happen; never loop on one
            break;
        }
        ordered.extend(now);
        shards = later;
    }
    ordered
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
        match tokio::time::timeout(self.budget, self.catch_up()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = format!("{e:#}"), "counters not caught up"),
            Err(_) => tracing::warn!("counters not caught up within the budget"),
        }
        self.store.step_counts(account, scenario).await
    }
}
