//! `hookline bench`: in one run on this machine, the raw rate of a reqwest client POSTing 1 KB
//! JSON to a local receiver, and Hookline's end-to-end rate (event in → webhook received,
//! accepted on the first try) with event→receipt latency, at the same concurrency.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use hookline_core::domain::retry::RetryPolicy;
use hookline_local::receiver::{Receiver, ReceiverOptions};
use serde_json::json;

use crate::serve;

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

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

pub async fn run(events: usize, concurrency: usize) -> anyhow::Result<()> {
    println!(
        "hookline bench: {events} requests, concurrency {concurrency}, {} cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );

    // 1. raw: reqwest → receiver, 1 KB JSON
    let raw_receiver = Receiver::start(
        "127.0.0.1:0",
        ReceiverOptions {
            keep: false,
            ..ReceiverOptions::default()
        },
    )
    .await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let body = Arc::new(json!({"id": "evt_x", "data": {"pad": "x".repeat(1000)}}).to_string());
    let url = Arc::new(raw_receiver.url("/raw"));
    let raw_n = events.max(5000);
    let start = Instant::now();
    {
        let (client, body, url) = (client.clone(), body.clone(), url.clone());
        in_parallel(raw_n, concurrency, move |_| {
            let (client, body, url) = (client.clone(), body.clone(), url.clone());
            async move {
                let _ = client
                    .post(url.as_str())
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await;
            }
        })
        .await;
    }
    let raw_rate = raw_n as f64 / start.elapsed().as_secs_f64();
    println!(
        "raw HTTP (reqwest → receiver, {} B body): {raw_rate:.0} req/s",
        body.len()
    );

    // 2. end to end: POST /v1/events → webhook received
    let dir = tempfile::tempdir()?;
    let receiver = Receiver::start("127.0.0.1:0", ReceiverOptions::default()).await?;
    let key = "hk_bench_key_0000000000";
    let server = serve::start(serve::Config {
        listen: "127.0.0.1:0".into(),
        db: dir.path().join("bench.db"),
        api_keys: vec![(1, key.into())],
        allow_private_targets: true,
        policy: RetryPolicy::default(),
        workers: concurrency.max(8),
    })
    .await?;
    let base = format!("http://{}", server.addr);
    let scenario = json!({
        "name": "bench", "trigger": {"type": "group_added"}, "start": "hook",
        "steps": [{"id": "hook", "type": "send_webhook", "url": receiver.url("/hook"),
                   "fields": ["email", "firstname", "lastname"],
                   "additional": {"pad": "y".repeat(700)}, "next": null}]
    });
    let created: serde_json::Value = client
        .post(format!("{base}/v1/scenarios"))
        .bearer_auth(key)
        .json(&scenario)
        .send()
        .await?
        .json()
        .await?;
    let id = created["id"].as_str().context("scenario id")?.to_string();
    client
        .post(format!("{base}/v1/scenarios/{id}/activate"))
        .bearer_auth(key)
        .send()
        .await?
        .error_for_status()?;

    let sent: Arc<std::sync::Mutex<HashMap<i64, jiff::Timestamp>>> = Arc::default();
    let start = Instant::now();
    {
        let (client, base, sent) = (client.clone(), base.clone(), sent.clone());
        in_parallel(events, concurrency, move |i| {
            let (client, base, sent) = (client.clone(), base.clone(), sent.clone());
            async move {
                let contact = i as i64 + 1;
                let event = json!({"id": format!("bench-{i}"), "type": "group_added",
                    "contact": {"id": contact, "email": format!("c{i}@example.org"), "firstname": "Bench", "lastname": "Mark"},
                    "context": {"groupId": 1}});
                sent.lock().unwrap_or_else(|e| e.into_inner()).insert(contact, jiff::Timestamp::now());
                let _ = client.post(format!("{base}/v1/events")).bearer_auth(key).json(&event).send().await;
            }
        })
        .await;
    }
    let intake_secs = start.elapsed().as_secs_f64();
    let got = receiver.wait_for(events, Duration::from_secs(600)).await;
    let e2e_secs = start.elapsed().as_secs_f64();
    let sent = sent.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut latencies: Vec<f64> = got
        .iter()
        .filter_map(|r| {
            let contact = r.json()["data"]["id"].as_i64()?;
            Some(r.at.duration_since(*sent.get(&contact)?).as_secs_f64() * 1000.0)
        })
        .collect();
    latencies.sort_by(|a, b| a.total_cmp(b));
    let e2e_rate = got.len() as f64 / e2e_secs;
    println!("intake alone: {:.0} events/s", events as f64 / intake_secs);
    println!(
        "end to end (event in → webhook received, first try): {} of {events} in {e2e_secs:.2} s = {e2e_rate:.0} webhooks/s",
        got.len()
    );
    println!(
        "event→receipt latency: p50 {:.1} ms, p99 {:.1} ms",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
    println!(
        "ratio end-to-end / raw: {:.1} %",
        100.0 * e2e_rate / raw_rate
    );
    server.stop().await
}
