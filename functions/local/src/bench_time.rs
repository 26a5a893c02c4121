//! `hookline bench-time`: time-based triggers at scale, in one run on this machine.
//!
//! 1. `--contacts N` contacts with birth dates are written straight into a fresh database
//!    (`--due D` of them born on 1 May, the others on any other day but 30 April and 1 May);
//! 2. `hookline serve` starts on it with its clock at 08:58:30 UTC on 1 May 2027, and a yearly
//!    birthday scenario (09:00 UTC, one webhook to a local receiver) is activated: the backfill
//!    schedules every contact's next birthday while a prober calls the API (a read and an
//!    event every 20 ms) — how long the backfill takes, and the API's latency meanwhile;
//! 3. at 09:00 (server clock) the D birthdays fall due: how long until each one's webhook is
//!    received.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hookline_core::domain::retry::RetryPolicy;
use hookline_local::Db;
use hookline_local::receiver::{Receiver, ReceiverOptions};
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::serve;

pub struct Options {
    pub contacts: usize,
    pub due: usize,
}

const KEY: &str = "hk_bench_key_0000000000";
/// How long before 09:00 the server's clock starts (the backfill's budget).
const LEAD: Duration = Duration::from_secs(90);

/// Contacts written per transaction while seeding.
const SEED_CHUNK: usize = 50_000;

/// Writes `n` contacts of account 1; the first `due` born on 1 May.
async fn seed(db: &Db, n: usize, due: usize) -> anyhow::Result<()> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut first = 0;
    while first < n {
        let last = (first + SEED_CHUNK).min(n);
        let rows: Vec<(i64, String)> = (first..last)
            .map(|i| {
                let year = rng.random_range(1940..2010);
                let (month, day) = if i < due {
                    (5, 1)
                } else {
                    loop {
                        let (m, d) = (rng.random_range(1..=12), rng.random_range(1..=28));
                        if !matches!((m, d), (4, 30) | (5, 1)) {
                            break (m, d);
                        }
                    }
                };
                let snapshot = json!({"id": i + 1, "email": format!("c{i}@example.org"),
                    "firstname": "Bench", "birthDate": format!("{year}-{month:02}-{day:02}")});
                (i as i64 + 1, snapshot.to_string())
            })
            .collect();
        db.call(move |c| {
            let mut stmt = c.prepare_cached(
                "INSERT INTO contacts (account, id, snapshot, updated_at, occurred_at) VALUES (1, ?1, ?2, 0, 0)",
            )?;
            for (id, snapshot) in &rows {
                stmt.execute(rusqlite::params![id, snapshot])?;
            }
            Ok(())
        })
        .await?;
        first = last;
    }
    Ok(())
}

fn count(path: &std::path::Path, sql: &str) -> anyhow::Result<i64> {
    let c =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    c.busy_timeout(Duration::from_secs(5))?;
    Ok(c.query_row(sql, [], |r| r.get(0))?)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

pub async fn run(o: Options) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bench.db");
    let due = o.due.min(o.contacts);
    println!(
        "hookline bench-time: {} contacts, {due} of them born on 1 May",
        o.contacts
    );
    let db = Db::open(&path)?;
    let started = Instant::now();
    seed(&db, o.contacts, due).await?;
    drop(db);
    println!("seeded in {:.1} s", started.elapsed().as_secs_f64());

    let receiver = Receiver::start("127.0.0.1:0", ReceiverOptions::default()).await?;
    let nine: jiff::Timestamp = "2027-05-01T09:00:00Z".parse()?;
    let clock_start = nine.checked_sub(jiff::SignedDuration::try_from(LEAD)?)?;
    let server_started = Instant::now();
    // 09:00 on the server's clock, in real time (the receiver stamps receipts in real time)
    let real_nine = jiff::Timestamp::now().checked_add(jiff::SignedDuration::try_from(LEAD)?)?;
    let server = serve::start(serve::Config {
        listen: "127.0.0.1:0".into(),
        db: path.clone(),
        api_keys: vec![(1, KEY.into())],
        allow_private_targets: true,
        policy: RetryPolicy::default(),
        workers: 64,
        destination_concurrency: hookline_core::domain::destination::DEFAULT_CONCURRENCY,
        clock_start: Some(clock_start),
    })
    .await?;
    let at_nine = server_started + LEAD;
    let base = format!("http://{}", server.addr);
    let client = reqwest::Client::new();
    let scenario = json!({
        "name": "birthdays", "trigger": {"type": "date_reached", "field": "birthDate",
        "yearly": true, "time": "09:00"}, "start": "hook",
        "steps": [{"id": "hook", "type": "send_webhook", "url": receiver.url("/birthday"),
                   "fields": ["email", "birthDate"], "next": null}]
    });
    let id = crate::bench::create_scenario(&client, &base, KEY, &scenario).await?;

    // the prober: a read and an event every 20 ms while the backfill runs
    let probing = Arc::new(AtomicBool::new(true));
    let prober = {
        let (client, base, id, probing) =
            (client.clone(), base.clone(), id.clone(), probing.clone());
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0u64;
            while probing.load(Ordering::SeqCst) {
                let t = Instant::now();
                let read = client
                    .get(format!("{base}/v1/scenarios/{id}"))
                    .bearer_auth(KEY)
                    .send()
                    .await;
                latencies.push(t.elapsed().as_secs_f64() * 1e3);
                let ok_read = read.is_ok_and(|r| r.status().is_success());
                n += 1;
                let t = Instant::now();
                let event = json!({"id": format!("probe-{n}"), "type": "contact_updated",
                    "contact": {"id": 10_000_000 + n, "email": "probe@example.org"}});
                let wrote = client
                    .post(format!("{base}/v1/events"))
                    .bearer_auth(KEY)
                    .json(&event)
                    .send()
                    .await;
                latencies.push(t.elapsed().as_secs_f64() * 1e3);
                if !ok_read || !wrote.is_ok_and(|r| r.status().is_success()) {
                    eprintln!("a probe failed");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            latencies
        })
    };
    let activated = Instant::now();
    crate::bench::activate(&client, &base, KEY, &id).await?;
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if count(&path, "SELECT count(*) FROM backfills")? == 0 {
            break;
        }
        if activated.elapsed() > Duration::from_secs(600) {
            anyhow::bail!("the backfill did not finish in 10 minutes");
        }
    }
    let backfill = activated.elapsed();
    probing.store(false, Ordering::SeqCst);
    let mut latencies = prober.await?;
    latencies.sort_by(f64::total_cmp);
    let scheduled = count(&path, "SELECT count(*) FROM occurrences")?;
    println!(
        "backfill: {scheduled} occurrences scheduled in {:.1} s ({:.0} contacts/s)",
        backfill.as_secs_f64(),
        o.contacts as f64 / backfill.as_secs_f64()
    );
    println!(
        "API during the backfill: {} calls, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies.len(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN)
    );
    if Instant::now() > at_nine {
        println!("(the backfill ran past 09:00: the firing below overlaps it)");
    }

    // 09:00: the birthdays fall due
    tokio::time::sleep_until(at_nine.into()).await;
    let mut last_seen = 0;
    let mut last_change = Instant::now();
    while receiver.count() < due {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let now = receiver.count();
        if now != last_seen {
            (last_seen, last_change) = (now, Instant::now());
        } else if last_change.elapsed() > Duration::from_secs(30) {
            break;
        }
    }
    let fired = at_nine.elapsed();
    let received = receiver.received();
    let mut delays: Vec<f64> = received
        .iter()
        .map(|r| r.at.duration_since(real_nine).as_secs_f64())
        .collect();
    delays.sort_by(f64::total_cmp);
    println!(
        "09:00: {} of {due} birthday webhooks received, the last {:.2} s after 09:00 \
         (receipt after 09:00: p50 {:.2} s, p99 {:.2} s; {:.0} webhooks/s)",
        received.len(),
        fired.as_secs_f64(),
        percentile(&delays, 0.5),
        percentile(&delays, 0.99),
        received.len() as f64 / fired.as_secs_f64()
    );
    let early = delays.iter().filter(|d| **d < 0.0).count();
    if early > 0 {
        println!("{early} webhooks were received before 09:00 by the receiver's clock");
    }
    server.stop().await?;
    Ok(())
}
