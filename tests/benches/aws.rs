//! AWS measurements (run by scripts/bench-aws.sh, which starts moto and builds the release
//! binaries): AWS requests and estimated cost per first-try webhook, a 10-message
//! webhook-deliver batch against a 200 ms receiver, and each Lambda binary's init time and size.

#![allow(clippy::unwrap_used)]

#[path = "aws/occurrences.rs"]
mod occurrences;
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::operation::{
    batch_write_item::BatchWriteItemInput, get_item::GetItemInput, put_item::PutItemInput,
    query::QueryInput, transact_write_items::TransactWriteItemsInput, update_item::UpdateItemInput,
};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::operation::send_message::SendMessageInput;
use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchInput;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use hookline_aws::aws_lambda_events::event::sqs::SqsEvent;
use hookline_aws::lambda::{Clients, engine_with, handle_batch};
use hookline_core::Hookline;
use hookline_core::domain::retry::RetryPolicy;
use hookline_core::ports::Queue;
use hookline_local::receiver::{Receiver, ReceiverOptions};
use serde_json::json;
use support::{Aws, sqs_event};

// Public on-demand prices, us-east-1 (per million).
const APIGW_HTTP_PER_M: f64 = 1.00;
const LAMBDA_REQ_PER_M: f64 = 0.20;
const LAMBDA_GB_S: f64 = 0.000_013_333_4; // arm64
const SQS_PER_M: f64 = 0.40;
const DDB_WRU_PER_M: f64 = 0.625;
const DDB_RRU_PER_M: f64 = 0.125;
const SCHEDULER_PER_M: f64 = 1.00;

#[derive(Debug, Default)]
struct Tally {
    requests: BTreeMap<String, u64>,
    wru: f64,
    rru: f64,
    /// Write units by kind of item (the pk's prefix: `DLV`, `ENR`, `STAT`, …).
    wru_by_item: BTreeMap<String, f64>,
    /// Sizes of items written, by pk, to price later updates of the same item.
    sizes: HashMap<String, f64>,
    /// SQS sends as billed: one request per started 64 KiB of a call's messages.
    sqs_billed: u64,
}

#[derive(Debug, Clone, Default)]
struct Counter(Arc<Mutex<Tally>>);

/// SQS bills a send per started 64 KiB of its messages.
fn billed(bytes: usize) -> u64 {
    bytes.div_ceil(64 * 1024).max(1) as u64
}

fn size_of(item: &HashMap<String, AttributeValue>) -> f64 {
    fn value(v: &AttributeValue) -> usize {
        match v {
            AttributeValue::S(s) | AttributeValue::N(s) => s.len(),
            AttributeValue::L(l) => 3 + l.iter().map(value).sum::<usize>(),
            AttributeValue::M(m) => 3 + m.iter().map(|(k, v)| k.len() + value(v)).sum::<usize>(),
            _ => 1,
        }
    }
    item.iter().map(|(k, v)| k.len() + value(v)).sum::<usize>() as f64
}

/// An item's key as one text, `{pk}|{sk}`.
fn pk(key: &HashMap<String, AttributeValue>) -> String {
    let part = |k: &str| match key.get(k) {
        Some(AttributeValue::S(s)) => s.clone(),
        _ => String::new(),
    };
    format!("{}|{}", part("pk"), part("sk"))
}

impl Tally {
    /// Write units of one item write: 1 per KB, doubled inside a transaction. A put is priced
    /// by its item; an update by the item as put plus the values it sets (what the item holds
    /// after it, roughly). An item with the keys of `gsi2` (a failed delivery) also writes its
    /// index entry (keys and `account`: under 1 KB) when it is put, and when an update sets or
    /// removes them; that unit is doubled in a transaction too (a conservative guess).
    fn write(&mut self, key: String, write: Write, transactional: bool) {
        let (size, entries) = match write {
            Write::Put { size, gsi2 } => {
                self.sizes.insert(key.clone(), size);
                (size, u8::from(gsi2))
            }
            Write::Update { size, gsi2 } => (
                self.sizes.get(&key).copied().unwrap_or(100.0) + size,
                u8::from(gsi2),
            ),
        };
        let units = (size / 1024.0).ceil().max(1.0) + f64::from(entries);
        let units = units * if transactional { 2.0 } else { 1.0 };
        self.wru += units;
        let kind = match key.split(['#', '|']).next().unwrap_or_default() {
            "DLV" => "DLV body".to_string(),
            "DLVS" => "DLV state".to_string(),
            other => other.to_string(),
        };
        *self.wru_by_item.entry(kind).or_default() += units;
    }
}

enum Write {
    /// A whole item of this size, with the keys of `gsi2` (the failed deliveries) or not.
    Put { size: f64, gsi2: bool },
    /// Values of this size set on an item; `gsi2`: its keys are set or removed.
    Update { size: f64, gsi2: bool },
}

impl Write {
    fn put(item: &HashMap<String, AttributeValue>) -> Write {
        Write::Put {
            size: size_of(item),
            gsi2: item.contains_key("gsi2pk"),
        }
    }

    fn update(expression: Option<&str>, values: &HashMap<String, AttributeValue>) -> Write {
        let sets = expression.unwrap_or_default();
        Write::Update {
            size: size_of(values),
            gsi2: sets.contains("gsi2pk"),
        }
    }

    /// A delete (priced as the smallest write).
    fn delete() -> Write {
        Write::Update {
            size: 0.0,
            gsi2: false,
        }
    }
}

impl Intercept for Counter {
    fn name(&self) -> &'static str {
        "request-counter"
    }

    fn read_before_serialization(
        &self,
        ctx: &BeforeSerializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = cfg
            .load::<Metadata>()
            .map(|m| format!("{} {}", m.service(), m.name()))
            .unwrap_or_default();
        let mut t = self.0.lock().unwrap();
        *t.requests.entry(op.clone()).or_default() += 1;
        let input = ctx.input();
        if let Some(put) = input.downcast_ref::<PutItemInput>() {
            let item = put.item.clone().unwrap_or_default();
            t.write(pk(&item), Write::put(&item), false);
        } else if let Some(update) = input.downcast_ref::<UpdateItemInput>() {
            let values = update
                .expression_attribute_values
                .clone()
                .unwrap_or_default();
            t.write(
                pk(update.key.as_ref().unwrap()),
                Write::update(update.update_expression.as_deref(), &values),
                false,
            );
        } else if let Some(tx) = input.downcast_ref::<TransactWriteItemsInput>() {
            for w in tx.transact_items.clone().unwrap_or_default() {
                if let Some(p) = w.put {
                    t.write(pk(&p.item), Write::put(&p.item), true);
                } else if let Some(u) = w.update {
                    let values = u.expression_attribute_values.unwrap_or_default();
                    let write = Write::update(Some(&u.update_expression), &values);
                    t.write(pk(&u.key), write, true);
                } else if let Some(d) = w.delete {
                    t.write(pk(&d.key), Write::delete(), true);
                }
            }
        } else if let Some(batch) = input.downcast_ref::<BatchWriteItemInput>() {
            for writes in batch
                .request_items
                .clone()
                .unwrap_or_default()
                .into_values()
            {
                for w in writes {
                    if let Some(p) = w.put_request {
                        t.write(pk(&p.item), Write::put(&p.item), false);
                    } else if let Some(d) = w.delete_request {
                        t.write(pk(&d.key), Write::delete(), false);
                    }
                }
            }
        } else if let Some(send) = input.downcast_ref::<SendMessageInput>() {
            t.sqs_billed += billed(send.message_body.as_deref().map_or(0, str::len));
        } else if let Some(batch) = input.downcast_ref::<SendMessageBatchInput>() {
            let bytes = batch
                .entries
                .iter()
                .flatten()
                .map(|e| e.message_body.len())
                .sum();
            t.sqs_billed += billed(bytes);
        } else if let Some(get) = input.downcast_ref::<GetItemInput>() {
            // under 4 KB: 1 unit strongly consistent, half eventually consistent
            t.rru += if get.consistent_read == Some(true) {
                1.0
            } else {
                0.5
            };
        } else if let Some(query) = input.downcast_ref::<QueryInput>() {
            t.rru += if query.consistent_read == Some(true) {
                1.0
            } else {
                0.5
            };
        } else if op.ends_with("GetItem") {
            t.rru += 1.0; // BatchGetItem: strongly consistent, one item under 4 KB
        }
        Ok(())
    }
}

/// stats-query's store over a counting client.
fn counting_store(aws: &Aws, counter: &Counter) -> hookline_aws::DynamoStore {
    hookline_aws::DynamoStore::new(clients(aws, counter).dynamodb, &aws.settings.table)
}

fn clients(aws: &Aws, counter: &Counter) -> Clients {
    Clients {
        dynamodb: aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&aws.config)
                .interceptor(counter.clone())
                .build(),
        ),
        sqs: aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(&aws.config)
                .interceptor(counter.clone())
                .build(),
        ),
        scheduler: aws_sdk_scheduler::Client::from_conf(
            aws_sdk_scheduler::config::Builder::from(&aws.config)
                .interceptor(counter.clone())
                .build(),
        ),
    }
}

/// Lambda's event source mapping for both queues, in batches of up to 10.
/// Returns (messages handled, batches, handler wall time per batch).
async fn pump(
    aws: &Aws,
    engine: &Hookline,
    queue: &dyn Queue,
    only: Option<&hookline_aws::QueueRef>,
) -> (usize, usize, Vec<Duration>) {
    let (mut messages_n, mut batches, mut times) = (0, 0, Vec::new());
    let sqs = aws_sdk_sqs::Client::new(&aws.config);
    for q in [&aws.settings.advance_queue, &aws.settings.deliver_queue] {
        if only.is_some_and(|o| o.url != q.url) {
            continue;
        }
        let messages = aws.receive(q).await;
        if messages.is_empty() {
            continue;
        }
        let event: SqsEvent = serde_json::from_value(sqs_event(&q.arn, &messages)).unwrap();
        let start = Instant::now();
        let response = handle_batch(engine, queue, event).await;
        times.push(start.elapsed());
        assert!(response.batch_item_failures.is_empty());
        let mut delete = sqs.delete_message_batch().queue_url(&q.url);
        for (i, (receipt, _, _)) in messages.iter().enumerate() {
            delete = delete.entries(
                aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(receipt)
                    .build()
                    .unwrap(),
            );
        }
        delete.send().await.unwrap();
        messages_n += messages.len();
        batches += 1;
    }
    (messages_n, batches, times)
}

const KEY: &str = "hk_bench_key_account_1";

/// `batched`: the events go in one `POST /v1/events/batch` instead of one request each.
async fn cost_per_webhook(batched: bool) {
    let n_events = 30;
    let aws = Aws::fresh(RetryPolicy::default()).await;
    let counter = Counter::default();
    let (engine, queue) = engine_with(clients(&aws, &counter), &aws.settings).unwrap();
    let rx = Receiver::start("127.0.0.1:0", ReceiverOptions::default())
        .await
        .unwrap();
    engine.register_key(KEY, 1).await.unwrap();
    let def = json!({"name": "bench", "trigger": {"type": "group_added"}, "start": "hook",
        "steps": [{"id": "hook", "type": "send_webhook", "url": rx.url("/h"), "fields": ["email", "firstname", "lastname"],
                   "additional": {"pad": "x".repeat(600)}, "next": null}]});
    let id = engine.create_scenario(1, def).await.unwrap().id;
    engine.activate_scenario(1, &id).await.unwrap();
    engine.authenticate(KEY).await.unwrap(); // a warm function has the key cached
    // and has checked its account's index of active scenarios (built once per account and
    // table: one GetItem, one Query and the marker's PutItem, not a cost per event)
    hookline_core::ports::ScenarioStore::active(&aws.store(), 1)
        .await
        .unwrap();
    *counter.0.lock().unwrap() = Tally::default();

    let intake = hookline_aws::http_api::intake_routes(engine.clone());
    let events: Vec<serde_json::Value> = (0..n_events)
        .map(|i| json!({"id": format!("e{i}"), "type": "group_added",
            "contact": {"id": i + 1, "email": format!("c{i}@example.org"), "firstname": "Bench", "lastname": "Mark"}}))
        .collect();
    let requests: Vec<(&str, serde_json::Value)> = if batched {
        vec![("/v1/events/batch", json!({ "events": events }))]
    } else {
        events.into_iter().map(|e| ("/v1/events", e)).collect()
    };
    let api_requests = requests.len();
    for (path, body) in requests {
        let request = lambda_http::request::from_str(&support::http_event(
            "POST",
            path,
            Some(KEY),
            Some(&body),
        ))
        .unwrap();
        use tower::ServiceExt;
        let response = intake.clone().oneshot(request).await.unwrap();
        assert!(response.status().is_success());
    }
    let (mut handled, mut batches) = (0, 0);
    for _ in 0..200 {
        let (m, b, _) = pump(&aws, &engine, queue.as_ref(), None).await;
        handled += m;
        batches += b;
        if m == 0 && rx.count() >= n_events as usize {
            break;
        }
    }
    // stats-query's stream handler keeps the counters: its writes are the webhooks' too
    aws.settle_with(&counting_store(&aws, &counter)).await;
    // the tally stops here: the statistics read below is the check, not part of a webhook
    let t = std::mem::take(&mut *counter.0.lock().unwrap());
    let stats = engine.step_stats(1, &id, "hook").await.unwrap();
    assert_eq!(stats.accepted, Some(n_events as u64));
    let per = |x: f64| x / n_events as f64;
    let how = if batched {
        "one POST /v1/events/batch"
    } else {
        "one POST /v1/events each"
    };
    println!(
        "\n== AWS requests per first-try webhook ({n_events} events, {how}, one webhook step, moto)"
    );
    for (op, count) in &t.requests {
        println!("  {op:<40} {:>6.2}", per(*count as f64));
    }
    let sqs_sends: u64 = t
        .requests
        .iter()
        .filter(|(k, _)| k.to_ascii_lowercase().starts_with("sqs"))
        .map(|(_, v)| v)
        .sum();
    // billed by 64 KiB chunks (a batch of ten small messages is one request)
    let sqs_billed = t.sqs_billed;
    let ddb: u64 = t
        .requests
        .iter()
        .filter(|(k, _)| k.to_ascii_lowercase().starts_with("dynamodb"))
        .map(|(_, v)| v)
        .sum();
    let schedules: u64 = t
        .requests
        .iter()
        .filter(|(k, _)| k.to_ascii_lowercase().starts_with("scheduler"))
        .map(|(_, v)| v)
        .sum();
    // event source mapping: one ReceiveMessage and one DeleteMessageBatch per batch of up to 10
    let esm = 2.0 * batches as f64;
    println!(
        "  {:<40} {:>6.2}   ({batches} batches for {handled} messages)",
        "event source mapping (receive+delete)",
        per(esm)
    );
    println!(
        "  DynamoDB units per webhook: {:.1} WRU, {:.1} RRU (estimated from item sizes)",
        per(t.wru),
        per(t.rru)
    );
    println!(
        "  WRU per webhook by item (transactions count double; DLV state includes its gsi2 entry while failed):"
    );
    for (kind, units) in &t.wru_by_item {
        println!("    {kind:<10} {:>5.2}", per(*units));
    }
    // intake per API request, consumers per batch; assumed durations, 128 MB (a batch intake:
    // 30 ms per event, four contacts' lanes at a time)
    // + the stream's one batch (up to 1,000 records; at volume one call per second per shard)
    let invocations = api_requests as f64 + batches as f64 + 1.0;
    let intake_s = if batched {
        0.030 * n_events as f64 / 4.0
    } else {
        0.030 * n_events as f64
    };
    let gb_s = intake_s * 0.128 + (batches as f64 + 1.0) * 0.128 * 0.080;
    let cost = [
        (
            "API Gateway HTTP API",
            per(api_requests as f64) * APIGW_HTTP_PER_M,
        ),
        ("Lambda requests", per(invocations) * LAMBDA_REQ_PER_M),
        (
            "Lambda duration (assumed 30 ms per intake, 80 ms per batch, 128 MB)",
            per(gb_s) * LAMBDA_GB_S * 1e6,
        ),
        (
            "SQS (sends + event source mapping)",
            per(sqs_billed as f64 + esm) * SQS_PER_M,
        ),
        ("DynamoDB on-demand writes", per(t.wru) * DDB_WRU_PER_M),
        ("DynamoDB on-demand reads", per(t.rru) * DDB_RRU_PER_M),
        (
            "EventBridge Scheduler",
            per(schedules as f64) * SCHEDULER_PER_M,
        ),
    ];
    println!("\n== estimated cost per million first-try webhooks (us-east-1 on-demand prices)");
    print_costs(&cost, 2);
    println!(
        "  ({:.1} AWS requests per webhook in all: {ddb} DynamoDB, {sqs_sends} SQS sends over {n_events} webhooks)",
        per(t.requests.values().sum::<u64>() as f64 + esm + api_requests as f64)
    );
}

/// A cost table's rows and their total, in dollars with `decimals` places.
fn print_costs(rows: &[(&str, f64)], decimals: usize) {
    for (what, usd) in rows {
        println!("  {what:<66} ${usd:>6.decimals$}");
    }
    let total: f64 = rows.iter().map(|c| c.1).sum();
    println!("  {:<66} ${total:>6.decimals$}", "total");
}

/// A receiver that answers after 200 ms, an active one-webhook scenario to it, and ten events
/// sent in (their first attempts queued); the receiver and the scenario's id.
async fn ten_events_to_a_slow_receiver(engine: &Hookline) -> (Receiver, String) {
    let rx = Receiver::start("127.0.0.1:0", ReceiverOptions::default())
        .await
        .unwrap();
    rx.set_delay(Duration::from_millis(200));
    let def = json!({"name": "slow", "trigger": {"type": "group_added"}, "start": "hook",
        "steps": [{"id": "hook", "type": "send_webhook", "url": rx.url("/slow"), "next": null}]});
    let id = engine.create_scenario(1, def).await.unwrap().id;
    engine.activate_scenario(1, &id).await.unwrap();
    for i in 0..10 {
        engine
            .intake(1, json!({"id": format!("e{i}"), "type": "group_added", "contact": {"id": i + 1, "email": "a@example.org"}}))
            .await
            .unwrap();
    }
    (rx, id)
}

async fn deliver_batch_of_10() {
    let aws = Aws::fresh(RetryPolicy::default()).await;
    let (engine, queue) = hookline_aws::lambda::engine(&aws.config, &aws.settings).unwrap();
    let (rx, _) = ten_events_to_a_slow_receiver(&engine).await;
    while pump(
        &aws,
        &engine,
        queue.as_ref(),
        Some(&aws.settings.advance_queue),
    )
    .await
    .0 > 0
    {}
    let mut messages = Vec::new();
    while messages.len() < 10 {
        messages.extend(aws.receive(&aws.settings.deliver_queue).await);
    }
    let event: SqsEvent =
        serde_json::from_value(sqs_event(&aws.settings.deliver_queue.arn, &messages)).unwrap();
    let start = Instant::now();
    let response = handle_batch(&engine, queue.as_ref(), event).await;
    let wall = start.elapsed();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(rx.count(), 10);
    println!("\n== webhook-deliver, one batch of 10 to a receiver that takes 200 ms");
    println!(
        "  wall time {:.0} ms (attempts run concurrently; store calls go to moto, which serves one request at a time)",
        wall.as_secs_f64() * 1000.0
    );
}

/// A store that answers every call after 5 ms (DynamoDB's order of magnitude), over SQLite:
/// unlike moto, it serves calls concurrently, so the handler's own concurrency shows.
struct Slow(hookline_local::SqliteStore);

const STORE_LATENCY: Duration = Duration::from_millis(5);

async fn wait() {
    tokio::time::sleep(STORE_LATENCY).await;
}

mod slow {
    use super::{Slow, wait};
    use async_trait::async_trait;
    use hookline_core::domain::contact::Contact;
    use hookline_core::domain::delivery::{Attempt, Delivery, DeliveryStatus};
    use hookline_core::domain::event::{EventMemo, IntakeAnswer};
    use hookline_core::domain::scenario::ScenarioRecord;
    use hookline_core::ports::*;
    use jiff::Timestamp;

    #[async_trait]
    impl ScenarioStore for Slow {
        async fn insert(&self, r: &ScenarioRecord) -> StoreResult<()> {
            wait().await;
            ScenarioStore::insert(&self.0, r).await
        }
        async fn get(&self, a: i64, id: &str) -> StoreResult<Option<ScenarioRecord>> {
            wait().await;
            ScenarioStore::get(&self.0, a, id).await
        }
        async fn update(&self, r: &ScenarioRecord, e: Version) -> StoreResult<bool> {
            wait().await;
            self.0.update(r, e).await
        }
        async fn list(
            &self,
            a: i64,
            c: Option<&str>,
            l: usize,
        ) -> StoreResult<Page<ScenarioRecord>> {
            wait().await;
            ScenarioStore::list(&self.0, a, c, l).await
        }
        async fn active(&self, a: i64) -> StoreResult<Vec<ScenarioRecord>> {
            wait().await;
            self.0.active(a).await
        }
        async fn active_for_trigger(&self, a: i64, t: &str) -> StoreResult<Vec<ScenarioRecord>> {
            wait().await;
            self.0.active_for_trigger(a, t).await
        }
    }

    #[async_trait]
    impl ContactStore for Slow {
        async fn put(
            &self,
            a: i64,
            c: &Contact,
            at: Timestamp,
            memo: &EventMemo,
        ) -> StoreResult<SnapshotPut> {
            wait().await;
            self.0.put(a, c, at, memo).await
        }
        async fn get(&self, a: i64, id: i64) -> StoreResult<Option<Contact>> {
            wait().await;
            ContactStore::get(&self.0, a, id).await
        }
        async fn page(&self, a: i64, cursor: Option<&str>, n: usize) -> StoreResult<Page<Contact>> {
            wait().await;
            self.0.page(a, cursor, n).await
        }
    }

    #[async_trait]
    impl EnrollmentStore for Slow {
        async fn event_answer(&self, a: i64, id: &str) -> StoreResult<Option<IntakeAnswer>> {
            wait().await;
            self.0.event_answer(a, id).await
        }
        async fn save_event_answer(&self, a: i64, x: &IntakeAnswer) -> StoreResult<IntakeAnswer> {
            wait().await;
            self.0.save_event_answer(a, x).await
        }
        async fn create(&self, e: &Enrollment, r: bool) -> StoreResult<EnrollOutcome> {
            wait().await;
            self.0.create(e, r).await
        }
        async fn get(&self, id: &str) -> StoreResult<Option<Enrollment>> {
            wait().await;
            EnrollmentStore::get(&self.0, id).await
        }
        async fn advance(
            &self,
            id: &str,
            from: u64,
            step: Option<&str>,
            state: EnrollmentState,
        ) -> StoreResult<bool> {
            wait().await;
            self.0.advance(id, from, step, state).await
        }
    }

    #[async_trait]
    impl DeliveryStore for Slow {
        async fn record_pass(&self, p: &Pass, d: Option<&Delivery>) -> StoreResult<bool> {
            wait().await;
            self.0.record_pass(p, d).await
        }
        async fn get(&self, id: &str) -> StoreResult<Option<Delivery>> {
            wait().await;
            DeliveryStore::get(&self.0, id).await
        }
        async fn record_attempt(
            &self,
            d: &Delivery,
            a: Option<&Attempt>,
            s: DeliveryStatus,
            n: Option<Timestamp>,
        ) -> StoreResult<bool> {
            wait().await;
            self.0.record_attempt(d, a, s, n).await
        }
        async fn record_resend(&self, d: &Delivery, a: &Attempt, ok: bool) -> StoreResult<bool> {
            wait().await;
            self.0.record_resend(d, a, ok).await
        }
        async fn list(&self, f: &DeliveryFilter<'_>) -> StoreResult<Page<Delivery>> {
            wait().await;
            DeliveryStore::list(&self.0, f).await
        }
        async fn step_counts(&self, a: i64, s: &str) -> StoreResult<Vec<StepCounts>> {
            wait().await;
            self.0.step_counts(a, s).await
        }
    }
}

/// Queued tasks kept in memory (the batch is handed to the handler by the bench itself).
#[derive(Default)]
struct Kept(Mutex<Vec<hookline_core::ports::Task>>);

#[async_trait::async_trait]
impl Queue for Kept {
    async fn enqueue(
        &self,
        task: &hookline_core::ports::Task,
        _due: jiff::Timestamp,
    ) -> hookline_core::ports::StoreResult<()> {
        wait().await;
        self.0.lock().unwrap().push(task.clone());
        Ok(())
    }
}

/// The same batch of 10 as [`deliver_batch_of_10`], every store call and send answering after
/// 5 ms: the handler's time with a store that serves calls at once.
async fn deliver_batch_of_10_with_a_5ms_store() {
    use hookline_core::ports::{Pipeline, Ports, SystemClock, Task, UlidIds};
    let aws = Aws::fresh(RetryPolicy::default()).await;
    let (aws_engine, _) = hookline_aws::lambda::engine(&aws.config, &aws.settings).unwrap();
    let dir = std::env::temp_dir().join(format!("hookline-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = hookline_local::Db::open(&dir.join("slow.db")).unwrap();
    let store = Arc::new(Slow(hookline_local::SqliteStore::new(db.clone())));
    let keys = Arc::new(hookline_local::SqliteStore::new(db));
    let queue = Arc::new(Kept::default());
    let ports = Ports {
        scenarios: store.clone(),
        contacts: store.clone(),
        enrollments: store.clone(),
        deliveries: store,
        occurrences: keys.clone(),
        keys,
        pipeline: Pipeline::Queued(queue.clone()),
        sender: aws_engine.ports.sender.clone(),
        clock: Arc::new(SystemClock),
        ids: Arc::new(UlidIds),
        destinations: aws_engine.ports.destinations.clone(),
    };
    let engine = Hookline::new(ports, RetryPolicy::default());
    let (rx, id) = ten_events_to_a_slow_receiver(&engine).await;
    let tasks: Vec<Task> = std::mem::take(&mut *queue.0.lock().unwrap());
    assert_eq!(tasks.len(), 10);
    let messages: Vec<(String, String, String)> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            (
                format!("r{i}"),
                format!("m{i}"),
                serde_json::to_string(t).unwrap(),
            )
        })
        .collect();
    let event: SqsEvent =
        serde_json::from_value(sqs_event(&aws.settings.deliver_queue.arn, &messages)).unwrap();
    let start = Instant::now();
    let response = handle_batch(&engine, queue.as_ref(), event).await;
    let wall = start.elapsed();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(rx.count(), 10);
    aws.settle().await;
    let stats = engine.step_stats(1, &id, "hook").await.unwrap();
    assert_eq!(stats.accepted, Some(10));
    println!("\n== webhook-deliver, one batch of 10 to a 200 ms receiver, every store call 5 ms");
    println!(
        "  wall time {:.0} ms (each message: read, scenario, POST, completion, record — concurrently)",
        wall.as_secs_f64() * 1000.0
    );
    let _ = std::fs::remove_dir_all(&dir);
}

async fn init_times() {
    use axum::routing::get;
    println!(
        "\n== Lambda binaries: init (process start → first GET /runtime/invocation/next) and size"
    );
    let endpoint = support::endpoint();
    for name in [
        "trigger-intake",
        "scenario-api",
        "stats-query",
        "scenario-advance",
        "webhook-deliver",
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target/release")
            .join(name);
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let mut samples = Vec::new();
        for _ in 0..5 {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Instant>(1);
            let app = axum::Router::new().route(
                "/2018-06-01/runtime/invocation/next",
                get(move || {
                    let tx = tx.clone();
                    async move {
                        let _ = tx.send(Instant::now()).await;
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        ""
                    }
                }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = tokio::spawn(async move { axum::serve(listener, app).await });
            let start = Instant::now();
            let mut child = std::process::Command::new(&path)
                .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
                .env("AWS_LAMBDA_FUNCTION_NAME", name)
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
                .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
                .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
                .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
                .env("AWS_REGION", "us-east-1")
                .env("AWS_ACCESS_KEY_ID", "test")
                .env("AWS_SECRET_ACCESS_KEY", "test")
                .env("AWS_ENDPOINT_URL", &endpoint)
                .env("HOOKLINE_TABLE", "t")
                .env("HOOKLINE_ADVANCE_QUEUE_URL", "u")
                .env("HOOKLINE_ADVANCE_QUEUE_ARN", "a")
                .env("HOOKLINE_DELIVER_QUEUE_URL", "u")
                .env("HOOKLINE_DELIVER_QUEUE_ARN", "a")
                .env("HOOKLINE_SCHEDULE_GROUP", "g")
                .env("HOOKLINE_SCHEDULER_ROLE_ARN", "r")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "{}: {e} (run scripts/bench-aws.sh, which builds it)",
                        path.display()
                    )
                });
            let ready = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .ok()
                .flatten();
            let _ = child.kill();
            let _ = child.wait();
            server.abort();
            if let Some(at) = ready {
                samples.push(at.duration_since(start).as_secs_f64() * 1000.0);
            }
        }
        samples.sort_by(|a, b| a.total_cmp(b));
        let median = samples.get(samples.len() / 2).copied().unwrap_or(f64::NAN);
        println!(
            "  {name:<18} init median {median:>5.1} ms (of {}), x86_64 release binary {:.1} MB",
            samples.len(),
            size as f64 / 1e6
        );
    }
}

#[tokio::main]
async fn main() {
    // `HOOKLINE_BENCH=cost` runs the cost tallies only (the quick loop while changing the
    // store), `HOOKLINE_BENCH=init` the init times only
    let only = std::env::var("HOOKLINE_BENCH").unwrap_or_default();
    if only != "init" {
        cost_per_webhook(false).await;
        cost_per_webhook(true).await;
        occurrences::cost_per_occurrence().await;
    }
    if only.is_empty() {
        deliver_batch_of_10().await;
        deliver_batch_of_10_with_a_5ms_store().await;
    }
    if only != "cost" {
        init_times().await;
    }
}
