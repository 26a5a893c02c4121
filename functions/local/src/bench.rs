//! `hookline bench`: in one run on this machine, the raw rate of a reqwest client POSTing 1 KB
//! JSON to a local receiver, then Hookline end to end (event in → webhook received, accepted
//! on the first try) over a fresh database, in one of three shapes:
//! - burst: `--events N --concurrency C` events as fast as they are answered;
//! - batches: the same with `--batch B` events per `POST /v1/events/batch`;
//! - steady: `--rate R --seconds S`, R events a second, open loop.
//!
//! Each event carries its send time (`customFields.sentNs`), which the webhook carries back, so
//! event → receipt latency needs no table in the bench; a burst of more than 100,000 events is
//! reported per 100,000 with the process's RSS, to show memory stays flat.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use hookline_core::domain::retry::RetryPolicy;
use hookline_local::receiver::{Receiver, ReceiverOptions};
use serde_json::{Value, json};

use crate::serve;

pub struct Options {
    pub events: usize,
    pub concurrency: usize,
    pub batch: usize,
    pub rate: Option<u32>,
    pub seconds: u64,
}

/// Events per report (and RSS sample) in a long burst.
const CHUNK: usize = 100_000;
const KEY: &str = "hk_bench_key_0000000000";

/// `POST /v1/scenarios`: the new scenario's id.
pub(crate) async fn create_scenario(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    def: &Value,
) -> anyhow::Result<String> {
    let created: Value = client
        .post(format!("{base}/v1/scenarios"))
        .bearer_auth(key)
        .json(def)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(created["id"].as_str().context("scenario id")?.to_string())
}

/// `POST /v1/scenarios/{id}/activate`.
pub(crate) async fn activate(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    id: &str,
) -> anyhow::Result<()> {
    client
        .post(format!("{base}/v1/scenarios/{id}/activate"))
        .bearer_auth(key)
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}

async fn in_parallel<F, Fut>(total: usize, concurrency: usize, job: F)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let job = Arc::new(job);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (next, job) = (next.clone(), job.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= total {
                    break;
                }
                job(i).await;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Latencies in 50 µs buckets up to 2 s (fixed memory, whatever the run's length).
struct Histogram {
    buckets: Vec<u64>,
    max_ms: f64,
    /// When the slowest one was sent (ns since the epoch).
    max_sent_ns: i64,
    first_sent_ns: i64,
    n: u64,
}

const BUCKET_MS: f64 = 0.05;

impl Histogram {
    fn new() -> Self {
        Histogram {
            buckets: vec![0; 40_001],
            max_ms: 0.0,
            max_sent_ns: 0,
            first_sent_ns: i64::MAX,
            n: 0,
        }
    }

    fn add(&mut self, ms: f64, sent_ns: i64) {
        let i = ((ms.max(0.0) / BUCKET_MS) as usize).min(self.buckets.len() - 1);
        self.buckets[i] += 1;
        if ms > self.max_ms {
            self.max_ms = ms;
            self.max_sent_ns = sent_ns;
        }
        self.first_sent_ns = self.first_sent_ns.min(sent_ns);
        self.n += 1;
    }

    fn percentile(&self, p: f64) -> f64 {
        let want = ((self.n as f64) * p).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= want {
                return (i as f64 + 1.0) * BUCKET_MS;
            }
        }
        self.max_ms
    }

    fn summary(&self) -> String {
        format!(
            "p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.1} ms (sent at +{:.2} s)",
            self.percentile(0.5),
            self.percentile(0.9),
            self.percentile(0.99),
            self.max_ms,
            (self.max_sent_ns - self.first_sent_ns) as f64 / 1e9
        )
    }
}

/// What the receiver got: latencies, and which contacts (to tell a duplicate from a loss).
struct Tally {
    latency: Histogram,
    seen: Vec<bool>,
    distinct: usize,
    duplicates: usize,
}

impl Tally {
    fn new(events: usize) -> Self {
        Tally {
            latency: Histogram::new(),
            seen: vec![false; events + 1],
            distinct: 0,
            duplicates: 0,
        }
    }

    fn take(&mut self, receiver: &Receiver) {
        for r in receiver.drain() {
            let body = r.json();
            let data = &body["data"];
            let Some(contact) = data["id"].as_u64().map(|c| c as usize) else {
                continue;
            };
            if let Some(sent) = data["customFields"]["sentNs"].as_i64() {
                self.latency
                    .add((r.at.as_nanosecond() as i64 - sent) as f64 / 1e6, sent);
            }
            match self.seen.get_mut(contact) {
                Some(seen) if *seen => self.duplicates += 1,
                Some(seen) => {
                    *seen = true;
                    self.distinct += 1;
                }
                None => {}
            }
        }
    }

    /// Waits until `n` distinct contacts got their webhook (or `timeout` passes).
    async fn wait_for(&mut self, receiver: &Receiver, n: usize, timeout: Duration) {
        let end = Instant::now() + timeout;
        while self.distinct < n && Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(20)).await;
            self.take(receiver);
        }
    }
}

fn rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

fn event(i: usize) -> Value {
    let contact = i + 1;
    json!({"id": format!("bench-{i}"), "type": "group_added",
        "contact": {"id": contact, "email": format!("c{i}@example.org"), "firstname": "Bench", "lastname": "Mark",
                    "customFields": {"sentNs": jiff::Timestamp::now().as_nanosecond() as i64}},
        "context": {"groupId": 1}})
}

pub async fn run(o: Options) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!(
        "hookline bench: {cores} cores, concurrency {}",
        o.concurrency
    );

    // 1. raw: reqwest → receiver, 1 KB JSON, failures counted apart
    let raw_receiver = Receiver::start(
        "127.0.0.1:0",
        ReceiverOptions {
            keep: false,
            ..ReceiverOptions::default()
        },
    )
    .await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(o.concurrency.max(64))
        .build()?;
    let body = Arc::new(json!({"id": "evt_x", "data": {"pad": "x".repeat(1000)}}).to_string());
    let url = Arc::new(raw_receiver.url("/raw"));
    let raw_n = o.events.clamp(5_000, 50_000);
    let failed = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    {
        let (client, body, url, failed) =
            (client.clone(), body.clone(), url.clone(), failed.clone());
        in_parallel(raw_n, o.concurrency, move |_| {
            let (client, body, url, failed) =
                (client.clone(), body.clone(), url.clone(), failed.clone());
            async move {
                let ok = client
                    .post(url.as_str())
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if !ok {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
        .await;
    }
    let failed = failed.load(Ordering::Relaxed);
    let raw_rate = (raw_n - failed) as f64 / start.elapsed().as_secs_f64();
    println!(
        "raw HTTP (reqwest → receiver, {} B body): {raw_rate:.0} req/s ({failed} failed)",
        body.len()
    );

    // 2. Hookline over a fresh database
    let dir = tempfile::tempdir()?;
    let receiver = Receiver::start("127.0.0.1:0", ReceiverOptions::default()).await?;
    let server = serve::start(serve::Config {
        listen: "127.0.0.1:0".into(),
        db: dir.path().join("bench.db"),
        api_keys: vec![(1, KEY.into())],
        allow_private_targets: true,
        policy: RetryPolicy::default(),
        workers: o.concurrency.max(64),
        destination_concurrency: hookline_core::domain::destination::DEFAULT_CONCURRENCY,
        clock_start: None,
    })
    .await?;
    let base = Arc::new(format!("http://{}", server.addr));
    let scenario = json!({
        "name": "bench", "trigger": {"type": "group_added"}, "start": "hook",
        "steps": [{"id": "hook", "type": "send_webhook", "url": receiver.url("/hook"),
                   "fields": ["email", "firstname", "lastname", "customFields"],
                   "additional": {"pad": "y".repeat(700)}, "next": null}]
    });
    let id = create_scenario(&client, &base, KEY, &scenario).await?;
    activate(&client, &base, KEY, &id).await?;
    let refused = Arc::new(AtomicUsize::new(0));

    let result = match o.rate {
        Some(rate) => steady(&client, &base, &receiver, rate, o.seconds, &refused).await,
        None => burst(&client, &base, &receiver, &o, &refused, raw_rate).await,
    };
    let refused = refused.load(Ordering::Relaxed);
    if refused > 0 {
        println!("events refused or failed at intake: {refused}");
    }
    server.stop().await?;
    result
}

async fn send(client: &reqwest::Client, base: &str, first: usize, n: usize, refused: &AtomicUsize) {
    let response = if n == 1 {
        client
            .post(format!("{base}/v1/events"))
            .bearer_auth(KEY)
            .json(&event(first))
            .send()
            .await
    } else {
        let events: Vec<Value> = (first..first + n).map(event).collect();
        client
            .post(format!("{base}/v1/events/batch"))
            .bearer_auth(KEY)
            .json(&json!({"events": events}))
            .send()
            .await
    };
    if !response.is_ok_and(|r| r.status().is_success()) {
        refused.fetch_add(n, Ordering::Relaxed);
    }
}

async fn burst(
    client: &reqwest::Client,
    base: &Arc<String>,
    receiver: &Receiver,
    o: &Options,
    refused: &Arc<AtomicUsize>,
    raw_rate: f64,
) -> anyhow::Result<()> {
    let batch = o.batch.clamp(1, 100);
    println!(
        "burst: {} events, {}",
        o.events,
        if batch == 1 {
            "one per request".to_string()
        } else {
            format!("{batch} per batch request")
        }
    );
    let mut tally = Tally::new(o.events);
    let start = Instant::now();
    let mut intake_secs = 0.0;
    let mut done = 0;
    while done < o.events {
        let chunk = (o.events - done).min(CHUNK);
        let chunk_start = Instant::now();
        let requests = chunk.div_ceil(batch);
        let sending = {
            let (client, base, refused) = (client.clone(), base.clone(), refused.clone());
            tokio::spawn(in_parallel(requests, o.concurrency, move |r| {
                let (client, base, refused) = (client.clone(), base.clone(), refused.clone());
                async move {
                    let first = done + r * batch;
                    let n = batch.min(done + chunk - first);
                    send(&client, &base, first, n, &refused).await;
                }
            }))
        };
        while !sending.is_finished() {
            tokio::time::sleep(Duration::from_millis(20)).await;
            tally.take(receiver); // memory stays flat: what arrived is counted and dropped
        }
        intake_secs += chunk_start.elapsed().as_secs_f64();
        done += chunk;
        let expected = done - refused.load(Ordering::Relaxed);
        tally
            .wait_for(receiver, expected, Duration::from_secs(600))
            .await;
        if o.events > CHUNK {
            println!(
                "  {done:>8} events: {:.0} webhooks/s in this chunk, RSS {:.1} MiB",
                chunk as f64 / chunk_start.elapsed().as_secs_f64(),
                rss_mib().unwrap_or(f64::NAN)
            );
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let rate = tally.distinct as f64 / secs;
    println!(
        "intake alone: {:.0} events/s",
        o.events as f64 / intake_secs
    );
    println!(
        "end to end (event in → webhook received, first try): {} of {} in {secs:.2} s = {rate:.0} webhooks/s ({} duplicates)",
        tally.distinct, o.events, tally.duplicates
    );
    println!("event → receipt latency: {}", tally.latency.summary());
    println!("ratio end-to-end / raw: {:.1} %", 100.0 * rate / raw_rate);
    println!("RSS: {:.1} MiB", rss_mib().unwrap_or(f64::NAN));
    Ok(())
}

async fn steady(
    client: &reqwest::Client,
    base: &Arc<String>,
    receiver: &Receiver,
    rate: u32,
    seconds: u64,
    refused: &Arc<AtomicUsize>,
) -> anyhow::Result<()> {
    let total = (rate as u64 * seconds) as usize;
    println!("steady: {rate} events/s for {seconds} s ({total} events, open loop)");
    let mut tally = Tally::new(total);
    let start = tokio::time::Instant::now();
    let period = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let mut sends = tokio::task::JoinSet::new();
    for i in 0..total {
        tokio::time::sleep_until(start + period * i as u32).await;
        let (client, base, refused) = (client.clone(), base.clone(), refused.clone());
        sends.spawn(async move { send(&client, &base, i, 1, &refused).await });
        tally.take(receiver);
    }
    while sends.join_next().await.is_some() {}
    let expected = total - refused.load(Ordering::Relaxed);
    tally
        .wait_for(receiver, expected, Duration::from_secs(60))
        .await;
    println!(
        "delivered: {} of {total} ({} duplicates)",
        tally.distinct, tally.duplicates
    );
    println!("event → receipt latency: {}", tally.latency.summary());
    println!("RSS: {:.1} MiB", rss_mib().unwrap_or(f64::NAN));
    Ok(())
}
