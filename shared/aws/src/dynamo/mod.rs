//! Every store port on one DynamoDB table.
//!
//! Keys (`pk`, `sk`; index `gsi2` on `gsi2pk`, `gsi2sk`; TTL attribute `expires_at`):
//!
//! | item | pk | sk |
//! |---|---|---|
//! | scenario | `ACCT#{account}` | `SCN#{id}` |
//! | active scenario (a copy, while active; an intake reads the partition once) | `ACTIVE#{account}` | `SCN#{id}` |
//! | the active index is complete (written once per account) | `ACCT#{account}` | `ACTIVE-INDEX#ACCOUNT` |
//! | contact snapshot, with the memos of its last events in slots `evt0`…`evt3` (one `UpdateItem` sets both) | `CON#{account}#{id}` | `CON` |
//! | event answer, only for an event older than its contact's stored snapshot (TTL 7 d) | `EVT#{account}#{event id}` | `EVT` |
//! | enrollment (re-entry allowed) | `ENR#{id}` | `ENR` |
//! | enrollment, no re-entry: keyed by its entry, the first part of its id `{entry}.{origin}` (its put claims the entry; `id` tells whose) | `ENR#{entry}` | `ENR` |
//! | pass marker (account, scenario, step, `unique`; TTL 15 d) | `PASS#{key}` | `PASS` |
//! | a contact's first pass of a step (re-entry only; names the pass that claimed it) | `UNQ#{scenario}#{step}#{contact}` | `UNQ` |
//! | a step's counters (written by the stream handler only) | `STAT#{scenario}` | `{step}` |
//! | the last stream record applied to the counters, per stream shard (TTL 2 d) | `STRM#{shard id}` | `STRM` |
//! | delivery state: status, attempts, `unique` (TTL 30 d after the deadline), in its step's partitions (the id names its step and starts with its creation time: `delivery_id`) | `DLVS#{step key}#{shard}` | `{id}`; while failed, also gsi2: `DLVF#{scenario}#{step}#{shard}`, `{id}` (projected: `account`) |
//! | delivery body: url, headers, payload (written once; same TTL) | `DLV#{id}` | `BODY` |
//! | API key (`revoked_at` once revoked) | `KEY#{sha256}` | `KEY` |
//! | API key, listed | `KEYS` | `{prefix}#{sha256}` |
//! | contact snapshot's time (`occurred_at`, on the contact item) | | |
//! | occurrence of a time-based trigger (TTL 30 d after it) | `OCC#{minute}#{shard}` | `{account}#{scenario}#{contact}#{date}` |
//! | the last minute the tick swept | `SWEEP` | `SWEEP` |
//! | a destination's shared state (SPEC §6a; `url`, `state`, `ver`, `fails`; TTL 30 d after its last change) | `DST#{account}` | `{dst_ id}` |
//!
//! Write units are the cost (every write is billed per started KB, twice inside a
//! transaction), so the webhook path has **no transaction**: each record is one conditional
//! write, keyed so that a repeated message or a retry after a crash finds what it wrote and
//! goes on — a pass is its record's conditional put (the delivery's state, put with its first
//! attempt, its body just before it unless that attempt was accepted; or a pass marker), a
//! later attempt one `UpdateItem` conditioned on the attempt count, an enrollment's move one
//! conditioned on its id and sequence number; claims (an enrollment keyed by its entry, a
//! first pass) name their holder, so a retry recognises its own. The counters follow from the
//! table's stream (`counters.rs`). A busy webhook step never becomes a hot key: its deliveries are
//! spread over [`SHARDS`] partition keys (by delivery id) and merged on read, and its counters
//! take one write per stream batch.
//!
//! One module per store: `scenarios.rs`, `contacts.rs`, `enrollments.rs` (with event answers),
//! `deliveries/` (items, list reads, the store), `counters.rs` (kept from the stream), `keys.rs`,
//! `occurrences.rs`, `destinations/` (the item, the board, the gate); the helpers they share are
//! here.

mod contacts;
mod counters;
mod deliveries;
mod destinations;
mod enrollments;
mod keys;
mod occurrences;
mod scenarios;

use std::collections::HashMap;

use anyhow::{Context, anyhow};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use jiff::Timestamp;
use sha2::{Digest, Sha256};

pub use destinations::DynamoDestinations;

/// Partition keys per webhook step for counters and the delivery index.
pub const SHARDS: u32 = 16;
pub(super) const DAY_SECS: i64 = 86_400;

pub(super) type Item = HashMap<String, AttributeValue>;

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(super) fn key(pk: String, sk: &str) -> Item {
    HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
}

pub(super) fn get_s(item: &Item, k: &str) -> anyhow::Result<String> {
    match item.get(k) {
        Some(AttributeValue::S(v)) => Ok(v.clone()),
        _ => Err(anyhow!("attribute {k} is missing or not a string")),
    }
}

pub(super) fn opt_s(item: &Item, k: &str) -> Option<String> {
    match item.get(k) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

pub(super) fn get_n(item: &Item, k: &str) -> anyhow::Result<i64> {
    match item.get(k) {
        Some(AttributeValue::N(v)) => v.parse().with_context(|| format!("attribute {k}")),
        _ => Err(anyhow!("attribute {k} is missing or not a number")),
    }
}

pub(super) fn opt_n(item: &Item, k: &str) -> Option<i64> {
    match item.get(k) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

pub(super) fn shard_of(id: &str) -> u32 {
    let digest = Sha256::digest(id.as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % SHARDS
}

pub(super) fn ttl(days: i64) -> AttributeValue {
    n(Timestamp::now().as_second() + days * DAY_SECS)
}

/// Was this a failed condition (an item that exists, a stale compare-and-set)?
pub(super) fn is_conditional<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(
    err: &SdkError<E>,
) -> bool {
    err.as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|c| {
            c == "ConditionalCheckFailedException" || c == "TransactionCanceledException"
        })
}

pub(super) fn cancelled(err: &SdkError<TransactWriteItemsError>) -> bool {
    matches!(
        err.as_service_error(),
        Some(TransactWriteItemsError::TransactionCanceledException(_))
    )
}

/// How many times a transaction cancelled by a conflicting one is tried in all.
const CONFLICT_TRIES: u32 = 6;
/// The first pause before trying again; it doubles, with ±50 % jitter.
const CONFLICT_PAUSE: std::time::Duration = std::time::Duration::from_millis(10);

/// Was this transaction cancelled only because another transaction touched one of its items at
/// the same moment (a busy step's counters), no condition having failed? Then trying again passes.
pub(super) fn conflict_only(err: &SdkError<TransactWriteItemsError>) -> bool {
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(e)) => {
            let codes: Vec<&str> = e
                .cancellation_reasons()
                .iter()
                .filter_map(|r| r.code())
                .collect();
            codes.contains(&"TransactionConflict") && !codes.contains(&"ConditionalCheckFailed")
        }
        Some(TransactWriteItemsError::TransactionInProgressException(_)) => true,
        _ => false,
    }
}

/// Runs `send` until it is not cancelled by a conflict (at most [`CONFLICT_TRIES`] times),
/// pausing 10 ms, 20 ms, 40 ms … with jitter in between: a conflict is retried here, in the
/// handler, never through an SQS redelivery (which would repeat the POST before it).
pub(super) async fn retry_conflicts<T, F, Fut>(
    mut send: F,
) -> Result<T, SdkError<TransactWriteItemsError>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, SdkError<TransactWriteItemsError>>>,
{
    let mut pause = CONFLICT_PAUSE;
    for _ in 1..CONFLICT_TRIES {
        match send().await {
            Err(e) if conflict_only(&e) => {
                let jitter = 0.5 + rand::random::<f64>();
                tokio::time::sleep(pause.mul_f64(jitter)).await;
                pause *= 2;
            }
            other => return other,
        }
    }
    send().await
}

#[derive(Clone)]
pub struct DynamoStore {
    pub(super) client: Client,
    pub(super) table: String,
    /// Accounts whose active-scenario index is known to be complete (this process checked).
    pub(super) indexed: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<i64>>>,
    /// Held while an account's index is checked, so that a burst of events after a cold start
    /// checks (and, once ever, builds) it once, not once per event.
    pub(super) indexing: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// What a [`DynamoStore::claim`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Claimed {
    Now,
    /// By the same holder, earlier (a retry).
    Before,
    ByAnother,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
            indexed: Default::default(),
            indexing: Default::default(),
        }
    }

    pub(super) async fn get_item(&self, pk: String, sk: &str) -> anyhow::Result<Option<Item>> {
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

    pub(super) async fn exists(&self, pk: String, sk: &str) -> anyhow::Result<bool> {
        Ok(self.get_item(pk, sk).await?.is_some())
    }

    /// Puts an item that must not exist yet; `Ok(false)` when it already does.
    pub(super) async fn put_new(&self, item: Item, what: &str) -> anyhow::Result<bool> {
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

    /// Claims a key for `holder` with a conditional put of `item` (which names it in `attr`):
    /// claimed now, by this same holder before (a retry after a crash), or by another.
    pub(super) async fn claim(
        &self,
        item: Item,
        attr: &str,
        holder: &str,
    ) -> anyhow::Result<Claimed> {
        let claimed = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match claimed {
            Ok(_) => Ok(Claimed::Now),
            Err(err) if is_conditional(&err) => {
                let stored = match err.as_service_error() {
                    Some(PutItemError::ConditionalCheckFailedException(c)) => {
                        c.item().and_then(|i| opt_s(i, attr))
                    }
                    _ => None,
                };
                Ok(if stored.as_deref() == Some(holder) {
                    Claimed::Before
                } else {
                    Claimed::ByAnother
                })
            }
            Err(err) => Err(anyhow::Error::from(err).context("DynamoDB PutItem claim")),
        }
    }

    /// One `TransactWriteItems`, conflicts retried in-process ([`retry_conflicts`]).
    pub(super) async fn transact(
        &self,
        writes: Vec<TransactWriteItem>,
    ) -> Result<(), SdkError<TransactWriteItemsError>> {
        retry_conflicts(|| {
            self.client
                .transact_write_items()
                .set_transact_items(Some(writes.clone()))
                .send()
        })
        .await
        .map(|_| ())
    }

    pub(super) fn put(
        &self,
        item: Item,
        condition: Option<&str>,
    ) -> anyhow::Result<TransactWriteItem> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_string))
            .build()?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Queries one partition, all pages (optionally only sort keys with a prefix).
    pub(super) async fn query_all(
        &self,
        pk: String,
        sk_prefix: Option<&str>,
    ) -> anyhow::Result<Vec<Item>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::config::http::HttpResponse;
    use aws_sdk_dynamodb::types::CancellationReason;
    use aws_sdk_dynamodb::types::error::TransactionCanceledException;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A cancellation as DynamoDB reports it, with one reason code per item.
    fn cancelled_by(codes: &[&str]) -> SdkError<TransactWriteItemsError> {
        let mut e = TransactionCanceledException::builder();
        for code in codes {
            e = e.cancellation_reasons(CancellationReason::builder().code(*code).build());
        }
        let response = HttpResponse::new(
            400.try_into().unwrap_or_else(|_| unreachable!()),
            aws_smithy_types::body::SdkBody::empty(),
        );
        SdkError::service_error(
            TransactWriteItemsError::TransactionCanceledException(e.build()),
            response,
        )
    }

    /// A conflict on a busy step's counters cannot be made to happen on the emulator (it serves
    /// one call at a time): the errors DynamoDB answers with are made here.
    #[tokio::test]
    async fn conflicts_are_tried_again_in_process_and_failed_conditions_are_not() {
        let calls = AtomicU32::new(0);
        let result = retry_conflicts(|| async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(cancelled_by(&["None", "TransactionConflict"])),
                _ => Ok("written"),
            }
        })
        .await;
        assert_eq!(result.ok(), Some("written"));
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        let calls = AtomicU32::new(0);
        let result: Result<(), _> = retry_conflicts(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(cancelled_by(&[
                "ConditionalCheckFailed",
                "TransactionConflict",
            ]))
        })
        .await;
        assert!(result.is_err());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "a failed condition is final"
        );

        let calls = AtomicU32::new(0);
        let result: Result<(), _> = retry_conflicts(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(cancelled_by(&["TransactionConflict"]))
        })
        .await;
        assert!(result.is_err_and(|e| conflict_only(&e)));
        assert_eq!(calls.load(Ordering::SeqCst), CONFLICT_TRIES, "bounded");
    }
}
