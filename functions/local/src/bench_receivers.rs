//! `hookline bench-receivers`: how Hookline treats receivers (SPEC §6a), in five shapes, each
//! over a fresh database and `hookline serve` in this process with the real retry delays, the
//! receivers on loopback:
//! - neighbour: 300 webhooks to a receiver that never answers in time, then 20 of another
//!   account to a fast one — the fast ones' event → receipt;
//! - 400 at once to a receiver taking 20 requests/s, `429` + `Retry-After: 1` beyond, and the
//!   same with a plain `429`: time until all are accepted, refusals, failures;
//! - `rateLimit: 5` on the step, 100 webhooks: the most requests in any 1-second window;
//! - 200 to a receiver down for 20 s (`503`), then up: requests while down, and how long after
//!   it is back until all are accepted.
//!
//! `BENCH_ONLY=neighbour|limited|paced|down` runs one shape.

use std::time::{Duration, Instant};

use anyhow::Context;
use hookline_core::domain::destination::DEFAULT_CONCURRENCY;
use hookline_core::domain::retry::RetryPolicy;
use hookline_local::receiver::{Received, Receiver, ReceiverOptions, busiest_second};
use serde_json::{Value, json};

use crate::bench::{activate, create_scenario};
use crate::serve;

const KEYS: [&str; 2] = ["hk_bench_receivers_1_000000", "hk_bench_receivers_2_000000"];

struct Site {
    server: serve::Server,
    base: String,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn site() -> anyhow::Result<Site> {
    let dir = tempfile::tempdir()?;
    let server = serve::start(serve::Config {
        listen: "127.0.0.1:0".into(),
        db: dir.path().join("receivers.db"),
        api_keys: vec![(1, KEYS[0].into()), (2, KEYS[1].into())],
        allow_private_targets: true,
        policy: RetryPolicy::default(),
        workers: 64,
        destination_concurrency: DEFAULT_CONCURRENCY,
        clock_start: None,
    })
    .await?;
    let base = format!("http://{}", server.addr);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    Ok(Site {
        server,
        base,
        client,
        _dir: dir,
    })
}

impl Site {
    /// An active scenario of `account` sending each contact to `url`.
    async fn scenario(
        &self,
        account: usize,
        url: &str,
        rate_limit: Option<f64>,
    ) -> anyhow::Result<String> {
        let mut step = json!({"id": "hook", "type": "send_webhook", "url": url,
                              "fields": ["email", "customFields"], "next": null});
        if let Some(limit) = rate_limit {
            step["rateLimit"] = json!(limit);
        }
        let def = json!({"name": "receivers", "trigger": {"type": "group_added"}, "start": "hook",
                         "steps": [step]});
        let key = KEYS[account - 1];
        let id = create_scenario(&self.client, &self.base, key, &def).await?;
        activate(&self.client, &self.base, key, &id).await?;
        Ok(id)
    }

    /// `n` events of `account` (contacts `first..first + n`), 32 at a time.
    async fn send(&self, account: usize, first: usize, n: usize) -> anyhow::Result<()> {
        let key = KEYS[account - 1];
        let mut tasks = Vec::new();
        for lane in 0..32.min(n) {
            let (client, base) = (self.client.clone(), self.base.clone());
            tasks.push(tokio::spawn(async move {
                let mut i = lane;
                while i < n {
                    let c = first + i;
                    let event = json!({"id": format!("r{account}-{c}"), "type": "group_added",
                        "contact": {"id": c, "email": format!("c{c}@example.org"),
                                    "customFields": {"sentNs": jiff::Timestamp::now().as_nanosecond() as i64}},
                        "context": {"groupId": 1}});
                    let answer = client
                        .post(format!("{base}/v1/events"))
                        .bearer_auth(key)
                        .json(&event)
                        .send()
                        .await?;
                    anyhow::ensure!(answer.status() == 202, "event answered {}", answer.status());
                    i += 32;
                }
                anyhow::Ok(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        Ok(())
    }

    /// The step's `failed` count.
    async fn failed(&self, account: usize, scenario: &str) -> anyhow::Result<u64> {
        let stats: Value = self
            .client
            .get(format!(
                "{}/v1/scenarios/{scenario}/steps/hook/stats",
                self.base
            ))
            .bearer_auth(KEYS[account - 1])
            .send()
            .await?
            .json()
            .await?;
        stats["failed"].as_u64().context("failed count")
    }

    fn stop(self) {
        tokio::spawn(async move {
            let _ = self.server.stop().await;
            drop(self._dir);
        });
    }
}

async fn receiver() -> anyhow::Result<Receiver> {
    Receiver::start("127.0.0.1:0", ReceiverOptions::default()).await
}

/// Distinct contacts accepted so far.
fn accepted(received: &[Received]) -> usize {
    let mut contacts: Vec<i64> = received
        .iter()
        .filter(|r| (200..300).contains(&r.answered))
        .filter_map(|r| r.json()["data"]["id"].as_i64())
        .collect();
    contacts.sort_unstable();
    contacts.dedup();
    contacts.len()
}

/// Waits until `n` distinct contacts are accepted, or `timeout`; the time it took.
async fn until_accepted(r: &Receiver, n: usize, timeout: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if accepted(&r.received()) >= n {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("not within the time allowed".into(), |d| {
        format!("{:.1} s", d.as_secs_f64())
    })
}

pub async fn run() -> anyhow::Result<()> {
    println!("hookline bench-receivers (release build recommended; real retry delays)");
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let run = |name: &str| only.is_empty() || only == name;
    if run("neighbour") {
        neighbour().await?;
    }
    if run("limited") {
        limited(true).await?;
        limited(false).await?;
    }
    if run("paced") {
        paced().await?;
    }
    if run("down") {
        down_then_up().await?;
    }
    Ok(())
}

async fn neighbour() -> anyhow::Result<()> {
    let site = site().await?;
    let (hanging, fast) = (receiver().await?, receiver().await?);
    hanging.set_delay(Duration::from_secs(20)); // past the 15 s timeout: every attempt hangs
    site.scenario(1, &hanging.url("/hang"), None).await?;
    site.scenario(2, &fast.url("/fast"), None).await?;
    site.send(1, 1, 300).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    site.send(2, 1, 20).await?;
    let got = fast.wait_for(20, Duration::from_secs(60)).await;
    let worst = got
        .iter()
        .filter_map(|r| {
            let sent = r.json()["data"]["customFields"]["sentNs"].as_i64()?;
            Some((r.at.as_nanosecond() as i64 - sent) as f64 / 1e6)
        })
        .fold(0.0f64, f64::max);
    println!(
        "neighbour: 300 to a hanging receiver ({} in flight there), then 20 of another account to a fast one: {} received, max event → receipt {worst:.1} ms (target ≤ 200 ms)",
        hanging.count(),
        got.len()
    );
    site.stop();
    Ok(())
}

async fn limited(retry_after: bool) -> anyhow::Result<()> {
    let site = site().await?;
    let r = receiver().await?;
    r.set_rate_limit(Some(20.0), retry_after);
    let id = site.scenario(1, &r.url("/limited"), None).await?;
    let start = Instant::now();
    site.send(1, 1, 400).await?;
    let done = until_accepted(&r, 400, Duration::from_secs(180))
        .await
        .map(|_| start.elapsed());
    let received = r.received();
    let refused = received.iter().filter(|x| x.answered == 429).count();
    let failed = site.failed(1, &id).await?;
    println!(
        "400 at once to a 20 req/s receiver, 429{}: all accepted in {} (target ≤ {} s), {} accepted, {refused} refused ({:.1} %; target ≤ {} %), {failed} failed, busiest second {} requests",
        if retry_after {
            " + Retry-After: 1"
        } else {
            " without Retry-After"
        },
        secs(done),
        if retry_after { 25 } else { 30 },
        accepted(&received),
        refused as f64 / 4.0,
        if retry_after { 10 } else { 20 },
        busiest_second(&received),
    );
    site.stop();
    Ok(())
}

async fn paced() -> anyhow::Result<()> {
    let site = site().await?;
    let r = receiver().await?;
    site.scenario(1, &r.url("/paced"), Some(5.0)).await?;
    let start = Instant::now();
    site.send(1, 1, 100).await?;
    let done = until_accepted(&r, 100, Duration::from_secs(60))
        .await
        .map(|_| start.elapsed());
    println!(
        "rateLimit 5, 100 webhooks: busiest second {} requests (target ≤ 6), all in {} (target ≤ 22 s)",
        busiest_second(&r.received()),
        secs(done)
    );
    site.stop();
    Ok(())
}

async fn down_then_up() -> anyhow::Result<()> {
    let site = site().await?;
    let r = receiver().await?;
    r.set_status(503);
    site.scenario(1, &r.url("/down"), None).await?;
    let start = Instant::now();
    site.send(1, 1, 200).await?;
    tokio::time::sleep(Duration::from_secs(20).saturating_sub(start.elapsed())).await;
    r.set_status(200);
    let while_down = r.count();
    let back = until_accepted(&r, 200, Duration::from_secs(120)).await;
    println!(
        "200 to a receiver down 20 s (503) then up: {while_down} requests while down (target ≤ 30), all accepted {} after it was back (target ≤ 5 s)",
        secs(back)
    );
    site.stop();
    Ok(())
}
