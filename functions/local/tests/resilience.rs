//! Restarts, bursts, slow receivers, shutdown, settings and keys.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn invariant(stats: &Value) -> bool {
    let n = |k: &str| stats[k].as_u64().unwrap();
    n("accepted") + n("pending") + n("failed") == n("passes")
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_with_a_pending_delivery_loses_nothing_and_counts_nothing_twice() {
    let mut server = Server::local("20s", "3s");
    let rx = receiver().await;
    rx.set_status(500);
    let after = receiver().await;
    let id = server
        .active_scenario(&json!({
            "name": "survive", "trigger": {"type": "group_added"}, "start": "hook",
            "steps": [{"id": "hook", "type": "send_webhook", "url": rx.url("/h"), "next": "pause"},
                      {"id": "pause", "type": "wait", "duration": "PT3S", "next": "after"},
                      {"id": "after", "type": "send_webhook", "url": after.url("/after"), "next": null}]
        }))
        .await;
    server
        .event("e1", "group_added", contact(1), json!({}))
        .await;
    rx.wait_for(1, Duration::from_secs(10)).await;
    server.wait_stats(&id, "pause", |s| s["passes"] == 1).await; // the contact is waiting
    server.kill9();
    rx.set_status(200);
    server.restart();
    server.wait_stats(&id, "hook", |s| s["accepted"] == 1).await;
    let got = after.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(
        got.len(),
        1,
        "the waiting contact did not resume after the restart"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let hook = server.step_stats(&id, "hook").await;
    assert_eq!(
        (
            hook["passes"].as_u64(),
            hook["accepted"].as_u64(),
            hook["pending"].as_u64()
        ),
        (Some(1), Some(1), Some(0))
    );
    assert_eq!(server.step_stats(&id, "pause").await["passes"], 1);
    assert_eq!(server.step_stats(&id, "after").await["passes"], 1);
    assert_eq!(after.count(), 1);
    let bodies: Vec<String> = rx.received().iter().map(|r| r.body.clone()).collect();
    assert!(
        bodies.len() >= 2 && bodies.iter().all(|b| *b == bodies[0]),
        "the retry after the restart changed the payload"
    );
    assert_eq!(server.deliveries(&id, "hook").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_100_events_against_a_flaky_receiver_keeps_the_statistics_exact() {
    let server = Server::local("30s", "300ms");
    let rx = Receiver::start(
        "127.0.0.1:0",
        ReceiverOptions {
            flaky_first: 120, // 60 refusals, never 5 in a row (SPEC §6a: that is `failing`)
            ..ReceiverOptions::default()
        },
    )
    .await
    .unwrap();
    let id = server
        .active_scenario(&webhook_scenario(&rx.url("/h")))
        .await;
    let sampler = {
        let base = server.base.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut samples = 0;
            loop {
                let stats: Value = http
                    .get(format!("{base}/v1/scenarios/{id}/steps/hook/stats"))
                    .bearer_auth(KEY1)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                assert!(
                    invariant(&stats),
                    "accepted + pending + failed != passes: {stats}"
                );
                samples += 1;
                if stats["accepted"] == 100 {
                    return samples;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let sends: Vec<_> = (0..100)
        .map(|i| {
            let base = server.base.clone();
            tokio::spawn(async move {
                let body = json!({"id": format!("burst-{i}"), "type": "group_added", "contact": contact(1000 + i), "context": {"groupId": 7}});
                let resp = reqwest::Client::new().post(format!("{base}/v1/events")).bearer_auth(KEY1).json(&body).send().await.unwrap();
                assert_eq!(resp.status(), 202);
            })
        })
        .collect();
    for s in sends {
        s.await.unwrap();
    }
    let samples = tokio::time::timeout(Duration::from_secs(60), sampler)
        .await
        .expect("not all accepted in time")
        .unwrap();
    assert!(
        samples > 3,
        "the invariant was sampled only {samples} times"
    );
    let stats = server.step_stats(&id, "hook").await;
    assert_eq!(
        stats,
        json!({"stepId": "hook", "type": "send_webhook", "passes": 100, "uniqueContacts": 100,
                             "accepted": 100, "pending": 0, "failed": 0})
    );
    let mut ids: Vec<i64> = rx
        .received()
        .iter()
        .filter(|r| r.answered == 200)
        .map(|r| r.json()["data"]["id"].as_i64().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        100,
        "not every contact's webhook was accepted exactly once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_receiver_does_not_hold_up_the_others() {
    let server = Server::local("30s", "1s");
    let slow = receiver().await;
    slow.set_delay(Duration::from_secs(4));
    let fast = receiver().await;
    let mut slow_def = webhook_scenario(&slow.url("/slow"));
    slow_def["trigger"] = json!({"type": "form_subscribed"});
    server.active_scenario(&slow_def).await;
    server
        .active_scenario(&webhook_scenario(&fast.url("/fast")))
        .await;
    for i in 0..10 {
        server
            .event(&format!("s{i}"), "form_subscribed", contact(i), json!({}))
            .await;
    }
    let start = std::time::Instant::now();
    server
        .event("f", "group_added", contact(99), json!({"groupId": 7}))
        .await;
    let got = fast.wait_for(1, Duration::from_secs(3)).await;
    assert_eq!(got.len(), 1, "the fast receiver waited behind the slow one");
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_in_flight_work_and_exits_cleanly() {
    let mut server = Server::local("30s", "1s");
    let rx = receiver().await;
    rx.set_delay(Duration::from_millis(800));
    let id = server
        .active_scenario(&webhook_scenario(&rx.url("/h")))
        .await;
    server
        .event("e1", "group_added", contact(1), json!({"groupId": 7}))
        .await;
    rx.wait_for(1, Duration::from_secs(5)).await; // the attempt is in flight
    let status = server.terminate();
    assert!(status.success(), "exit status {status}");
    server.restart();
    let stats = server.step_stats(&id, "hook").await;
    assert_eq!(
        stats["accepted"], 1,
        "the attempt in flight at SIGTERM was not recorded: {stats}"
    );
    assert_eq!(rx.count(), 1);
}

#[test]
fn invalid_settings_stop_start_up_naming_the_setting() {
    let bin = env!("CARGO_BIN_EXE_hookline");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let db = db.to_str().unwrap();
    for (args, envs, needle) in [
        (vec!["--retry-window", "forever"], vec![], "retry-window"),
        (vec!["--retry-delays", "1s,,2s"], vec![], "retry-delays"),
        (
            vec![],
            vec![("HOOKLINE_RETRY_WINDOW", "0s")],
            "HOOKLINE_RETRY_WINDOW",
        ),
        (
            vec![],
            vec![("HOOKLINE_ALLOW_PRIVATE_TARGETS", "maybe")],
            "allow-private-targets",
        ),
        (
            vec!["--api-key", "one:hk_0123456789abcdef"],
            vec![],
            "--api-key",
        ),
        (vec!["--listen", "not-an-address"], vec![], "--listen"),
    ] {
        let out = Command::new(bin)
            .args(["serve", "--db", db, "--listen", "127.0.0.1:0"])
            .args(&args)
            .envs(envs)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} started");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_create_prints_a_working_key_once() {
    let server = Server::local("8s", "1s");
    let db = db_path(&server);
    let out = Command::new(env!("CARGO_BIN_EXE_hookline"))
        .args([
            "keys",
            "create",
            "--account",
            "7",
            "--db",
            db.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(key.starts_with("hk_") && key.len() > 30);
    let (status, _) = server
        .request("GET", "/v1/scenarios", Some(&key), None)
        .await;
    assert_eq!(status, 200);
    // account 7 sees its own (empty) list, not account 1's
    let rx = receiver().await;
    server
        .active_scenario(&webhook_scenario(&rx.url("/h")))
        .await;
    let (_, list) = server
        .request("GET", "/v1/scenarios", Some(&key), None)
        .await;
    assert_eq!(list["items"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn one_process_per_database() {
    let server = Server::local("8s", "1s");
    let db = db_path(&server);
    let out = Command::new(env!("CARGO_BIN_EXE_hookline"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--db",
            db.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("another hookline"));
}

/// The referee of the inline path: `kill -9` in the middle of a burst of 5,000 events against
/// a flaky receiver. The platform retries every event it did not get a 202 for (same id); in
/// the end every contact's webhook is accepted, and every statistic is exact.
#[tokio::test(flavor = "multi_thread")]
async fn kill_9_in_the_middle_of_a_burst_of_5000_loses_nothing_and_counts_nothing_twice() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, RwLock};
    const N: usize = 5_000;
    let mut server = Server::local("60s", "200ms");
    let rx = Receiver::start(
        "127.0.0.1:0",
        ReceiverOptions {
            flaky_first: 3_000, // 1,500 refusals, never 5 in a row
            ..ReceiverOptions::default()
        },
    )
    .await
    .unwrap();
    let id = server
        .active_scenario(&webhook_scenario(&rx.url("/h")))
        .await;
    let base = Arc::new(RwLock::new(server.base.clone()));
    let answered = Arc::new(AtomicUsize::new(0));
    let next = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..16)
        .map(|_| {
            let (base, answered, next) = (base.clone(), answered.clone(), next.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= N {
                        return;
                    }
                    let body = json!({"id": format!("k9-{i}"), "type": "group_added",
                                      "contact": contact(10_000 + i as i64), "context": {"groupId": 7}});
                    let deadline = std::time::Instant::now() + Duration::from_secs(60);
                    loop {
                        let url = format!("{}/v1/events", base.read().unwrap());
                        let sent = http.post(url).bearer_auth(KEY1).json(&body).send().await;
                        if sent.is_ok_and(|r| r.status() == 202) {
                            break;
                        }
                        assert!(std::time::Instant::now() < deadline, "event {i} never answered 202");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    answered.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    while answered.load(Ordering::SeqCst) < 2_000 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill9();
    let at_kill = answered.load(Ordering::SeqCst);
    server.restart();
    *base.write().unwrap() = server.base.clone();
    for s in senders {
        s.await.unwrap();
    }
    // every sample of the statistics keeps the invariant, until all are accepted
    let mut samples = 0;
    let end = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let stats = server.step_stats(&id, "hook").await;
        assert!(
            invariant(&stats),
            "accepted + pending + failed != passes: {stats}"
        );
        samples += 1;
        if stats["accepted"] == N as u64 {
            break;
        }
        assert!(
            std::time::Instant::now() < end,
            "not all accepted in time: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats = server.step_stats(&id, "hook").await;
    assert_eq!(
        stats,
        json!({"stepId": "hook", "type": "send_webhook", "passes": N, "uniqueContacts": N,
               "accepted": N, "pending": 0, "failed": 0}),
        "killed after {at_kill} answers; {samples} samples"
    );
    let mut accepted: Vec<i64> = rx
        .received()
        .iter()
        .filter(|r| r.answered == 200)
        .map(|r| r.json()["data"]["id"].as_i64().unwrap())
        .collect();
    accepted.sort();
    accepted.dedup();
    assert_eq!(
        accepted.len(),
        N,
        "not every contact's webhook was accepted"
    );
}

/// `keys list` and `keys revoke` beside a running `serve`: a revoked key is refused within a
/// second (SPEC §8), the others keep working, and no key is ever printed again.
#[tokio::test(flavor = "multi_thread")]
async fn keys_list_and_revoke_work_beside_a_running_server() {
    let server = Server::local("8s", "1s");
    let db = db_path(&server);
    let hookline = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_hookline"))
            .args(args)
            .args(["--db", db.to_str().unwrap()])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, key, err) = hookline(&["keys", "create", "--account", "7"]);
    assert!(ok, "{err}");
    let key = key.trim().to_string();
    let prefix = &key[..11];
    assert!(err.contains(prefix), "{err}");
    let (ok, other, _) = hookline(&["keys", "create", "--account", "7"]);
    assert!(ok);
    let other = other.trim().to_string();
    // the server trusts the key
    assert_eq!(
        server
            .request("GET", "/v1/scenarios", Some(&key), None)
            .await
            .0,
        200
    );

    let (ok, list, err) = hookline(&["keys", "list"]);
    assert!(ok, "{err}");
    assert!(
        list.contains(prefix) && list.contains(&other[..11]),
        "{list}"
    );
    assert!(
        !list.contains(&key) && !list.contains(&other),
        "a key was printed: {list}"
    );

    let (ok, out, err) = hookline(&["keys", "revoke", prefix]);
    assert!(ok, "{err}");
    assert!(out.contains(prefix), "{out}");
    let revoked_at = std::time::Instant::now();
    loop {
        let (status, _) = server
            .request("GET", "/v1/scenarios", Some(&key), None)
            .await;
        if status == 401 {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "still accepted after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        server
            .request("GET", "/v1/scenarios", Some(&other), None)
            .await
            .0,
        200
    );
    let (_, list, _) = hookline(&["keys", "list"]);
    let line = list.lines().find(|l| l.starts_with(prefix)).unwrap();
    assert!(!line.trim_end().ends_with('-'), "not shown revoked: {line}");
    // revoking again, or an unknown prefix, fails and says why
    let (ok, _, err) = hookline(&["keys", "revoke", prefix]);
    assert!(!ok && err.contains("no live key"), "{err}");
    let (ok, _, _) = hookline(&["keys", "revoke", "hk_unknown1"]);
    assert!(!ok);
    // a server restart does not bring it back (it is revoked in the database)
    let mut server = server;
    server.kill9();
    server.restart();
    assert_eq!(
        server
            .request("GET", "/v1/scenarios", Some(&key), None)
            .await
            .0,
        401
    );
    assert_eq!(
        server
            .request("GET", "/v1/scenarios", Some(&other), None)
            .await
            .0,
        200
    );
}
