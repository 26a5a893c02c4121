//! Receivers (SPEC §6a) through `hookline serve`: isolation, configured and learned pace,
//! failing destinations, held deliveries that keep their attempts and let contacts move on,
//! the deadline of a held delivery, and the health routes.

mod common;

use std::time::{Duration, Instant};

use common::*;
use hookline_local::receiver::busiest_second;
use serde_json::{Value, json};

/// `n` events of account 1 (contacts `first..first + n`), 16 at a time.
async fn send(server: &Server, prefix: &str, first: i64, n: i64) {
    let mut tasks = Vec::new();
    for lane in 0..16 {
        let base = server.base.clone();
        let prefix = prefix.to_string();
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut i = lane;
            while i < n {
                let c = first + i;
                let body = json!({"id": format!("{prefix}-{c}"), "type": "group_added",
                                  "contact": contact(c), "context": {"groupId": 7}});
                let resp = http
                    .post(format!("{base}/v1/events"))
                    .bearer_auth(KEY1)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 202);
                i += 16;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

async fn destinations(server: &Server, query: &str) -> Vec<Value> {
    let (status, body) = server.get(&format!("/v1/destinations{query}")).await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().unwrap().clone()
}

/// A receiver that holds every request for 10 s takes at most 8 attempts at once, and another
/// account's webhooks to a fast receiver go through meanwhile, in a pool of only 16 slots.
#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_receiver_takes_its_share_and_never_delays_another_account() {
    let server = Server::start(&["--allow-private-targets", "--workers", "16"]);
    let (hanging, fast) = (receiver().await, receiver().await);
    hanging.set_delay(Duration::from_secs(10));
    server
        .active_scenario(&webhook_scenario(&hanging.url("/hang")))
        .await;
    send(&server, "hang", 1, 40).await;
    // account 2 → the fast receiver
    let def = webhook_scenario(&fast.url("/fast"));
    let (status, created) = server
        .request("POST", "/v1/scenarios", Some(KEY2), Some(&def))
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let (status, _) = server
        .request(
            "POST",
            &format!("/v1/scenarios/{id}/activate"),
            Some(KEY2),
            None,
        )
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start = Instant::now();
    for c in 0..5 {
        let body = json!({"id": format!("fast-{c}"), "type": "group_added", "contact": contact(500 + c),
                          "context": {"groupId": 7}});
        let (status, body) = server
            .request("POST", "/v1/events", Some(KEY2), Some(&body))
            .await;
        assert_eq!(status, 202, "{body}");
    }
    let got = fast.wait_for(5, Duration::from_secs(8)).await;
    assert_eq!(
        got.len(),
        5,
        "the fast receiver waited behind the hanging one"
    );
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "took {:?}",
        start.elapsed()
    );
    assert_eq!(
        hanging.count(),
        8,
        "at most 8 attempts in flight toward one destination"
    );
    // the hanging destination shows its load
    let list = destinations(&server, "").await;
    let hang = list
        .iter()
        .find(|d| d["url"] == hanging.url("/hang"))
        .unwrap();
    assert_eq!(hang["inFlight"], 8, "{hang}");
    assert_eq!(hang["waiting"], 32, "{hang}");
}

/// A step's `rateLimit` caps the requests per second toward its URL.
#[tokio::test(flavor = "multi_thread")]
async fn a_configured_rate_limit_paces_the_requests() {
    let server = Server::local("60s", "1s");
    let rx = receiver().await;
    let mut def = webhook_scenario(&rx.url("/paced"));
    def["steps"][0]["rateLimit"] = json!(4);
    let id = server.active_scenario(&def).await;
    send(&server, "first", 100, 1).await;
    rx.wait_for(1, Duration::from_secs(5)).await;
    send(&server, "paced", 1, 14).await;
    let got = rx.wait_for(15, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 15);
    let got = &got[1..]; // after the first, which opened the connection
    assert!(
        busiest_second(got) <= 5,
        "{} in one second",
        busiest_second(got)
    );
    let stats = server
        .wait_stats(&id, "hook", |s| s["accepted"] == 15)
        .await;
    assert_eq!(stats["failed"], 0);
    let list = destinations(&server, "").await;
    assert_eq!(list[0]["rateLimit"], 4.0, "{list:?}");
    assert_eq!(list[0]["pace"], 4.0, "{list:?}");
    assert_eq!(list[0]["status"], "healthy");
}

/// A receiver that takes 10 requests a second and refuses beyond (429 + Retry-After: 1): the
/// destination pauses and paces itself, instead of a storm of refusals and long backoffs.
#[tokio::test(flavor = "multi_thread")]
async fn refusals_pause_the_destination_and_teach_it_a_pace() {
    let server = Server::local("120s", "2s");
    let rx = receiver().await;
    rx.set_rate_limit(Some(10.0), true);
    let id = server
        .active_scenario(&webhook_scenario(&rx.url("/limited")))
        .await;
    send(&server, "limited", 1, 60).await;
    // each refused delivery retries after 2 s: without a pace for the destination, every
    // round of retries would draw another round of refusals
    let stats = server
        .wait_stats(&id, "hook", |s| s["accepted"] == 60)
        .await;
    assert_eq!(stats["failed"], 0);
    let refused = rx.received().iter().filter(|r| r.answered == 429).count();
    assert!(refused <= 15, "{refused} refusals");
    let list = destinations(&server, "?status=throttled").await;
    assert_eq!(
        list.len(),
        1,
        "a destination that refused is throttled: {list:?}"
    );
    let pace = list[0]["pace"].as_f64().expect("a learned pace");
    assert!(pace < 20.0, "near what the receiver takes (10/s): {list:?}");
}

/// A receiver that refuses with a plain `429` (no `Retry-After`) beyond 10 requests a second:
/// the refusals of one burst pause the destination once (1 s, not doubled by each refusal in
/// flight), and a refused delivery goes back to its destination at once, sent when the pause
/// ends and at its pace — not after its own retry delay (a minute here, longer than this test
/// waits).
#[tokio::test(flavor = "multi_thread")]
async fn refused_deliveries_wait_for_their_destination_not_their_own_retry_delay() {
    let server = Server::local("300s", "60s");
    let rx = receiver().await;
    rx.set_rate_limit(Some(10.0), false);
    let id = server
        .active_scenario(&webhook_scenario(&rx.url("/plain429")))
        .await;
    send(&server, "plain", 1, 60).await;
    let stats = server
        .wait_stats(&id, "hook", |s| s["accepted"] == 60)
        .await;
    assert_eq!(stats["failed"], 0);
    let refused = rx.received().iter().filter(|r| r.answered == 429).count();
    assert!(
        refused > 0,
        "the receiver refused some (else this shows nothing)"
    );
}

/// Five failures in a row make a destination `failing`: its other deliveries wait (no attempt
/// used) while one probe every 2 s is made; the first accepted probe releases them at once,
/// not after each delivery's own backoff; the contacts moved on meanwhile.
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_destination_is_probed_and_released_when_it_heals() {
    let server = Server::local("300s", "60s");
    let (down, next) = (receiver().await, receiver().await);
    down.set_status(503);
    let def = json!({
        "name": "two hooks", "trigger": {"type": "group_added", "groupId": 7}, "start": "hook",
        "steps": [{"id": "hook", "type": "send_webhook", "url": down.url("/down"), "next": "after"},
                  {"id": "after", "type": "send_webhook", "url": next.url("/next"), "next": null}]
    });
    let id = server.active_scenario(&def).await;
    send(&server, "down", 1, 30).await;
    // the contacts moved on while their first webhook is held back
    let after = next.wait_for(30, Duration::from_secs(10)).await;
    assert_eq!(
        after.len(),
        30,
        "contacts held behind a failing destination"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let while_down = down.count();
    assert!(
        while_down <= 14, // 8 at once, 4 more as the first 4 failures come back, a probe every 2 s
        "{while_down} requests to a failing destination"
    );
    let list = destinations(&server, "?status=failing").await;
    assert_eq!(list.len(), 1, "{list:?}");
    let failing = &list[0];
    assert!(
        failing["failingSince"].is_string() && failing["lastError"].is_string(),
        "{failing}"
    );
    let (status, one) = server
        .get(&format!(
            "/v1/destinations/{}",
            failing["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(one["status"], "failing");
    // waiting is not an attempt: most deliveries have made none
    let untried = server
        .deliveries(&id, "hook")
        .await
        .iter()
        .filter(|d| d["attempts"].as_array().unwrap().is_empty())
        .count();
    assert!(
        untried >= 30 - while_down,
        "{untried} deliveries without an attempt"
    );
    down.set_status(200);
    let back = Instant::now();
    server
        .wait_stats(&id, "hook", |s| s["accepted"] == 30)
        .await;
    assert!(
        back.elapsed() < Duration::from_secs(6),
        "released after {:?}",
        back.elapsed()
    );
    assert_eq!(
        destinations(&server, "")
            .await
            .iter()
            .filter(|d| d["status"] == "healthy")
            .count(),
        2
    );
}

/// A delivery held back when its deadline comes fails without a request, with the error the
/// spec names; it used none of its attempts.
#[tokio::test(flavor = "multi_thread")]
async fn a_held_delivery_fails_at_its_deadline_with_its_reason() {
    let server = Server::local("6s", "1m");
    let down = receiver().await;
    down.set_status(503);
    let id = server
        .active_scenario(&webhook_scenario(&down.url("/down")))
        .await;
    send(&server, "deadline", 1, 12).await;
    let stats = server.wait_stats(&id, "hook", |s| s["failed"] == 12).await;
    assert_eq!(stats["pending"], 0);
    let held_back: Vec<Value> = server
        .deliveries(&id, "hook")
        .await
        .into_iter()
        .filter(|d| {
            d["attempts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["error"] == "not attempted before the deadline: destination failing")
        })
        .collect();
    assert!(
        !held_back.is_empty(),
        "no delivery failed for its destination"
    );
    for d in &held_back {
        let attempts = d["attempts"].as_array().unwrap();
        let last = attempts.last().unwrap();
        assert!(last["status"].is_null() && last["durationMs"] == 0, "{d}");
    }
    assert!(down.count() < 12 + 8, "{} requests", down.count());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_health_routes_check_their_input_and_keep_accounts_apart() {
    let server = Server::local("60s", "1s");
    let rx = receiver().await;
    server
        .active_scenario(&webhook_scenario(&rx.url("/x")))
        .await;
    let list = destinations(&server, "").await;
    assert_eq!(
        list.len(),
        1,
        "a URL named by a step is a destination before any traffic"
    );
    let id = list[0]["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("dst_") && id.len() == 20);
    assert_eq!(list[0]["status"], "healthy");
    assert_eq!(list[0]["inFlight"], 0);
    let (status, body) = server.get("/v1/destinations?status=sleepy").await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("status")),
        "{body}"
    );
    let (status, body) = server.get("/v1/destinations?limit=0").await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("limit")),
        "{body}"
    );
    let (status, _) = server.get("/v1/destinations/dst_0000000000000000").await;
    assert_eq!(status, 404);
    let (status, _) = server
        .request("GET", &format!("/v1/destinations/{id}"), Some(KEY2), None)
        .await;
    assert_eq!(status, 404, "another account's destination");
    let (status, body) = server
        .request("GET", "/v1/destinations", Some(KEY2), None)
        .await;
    assert_eq!((status, body["items"].as_array().unwrap().len()), (200, 0));
    // a rateLimit out of range is refused, naming it
    let mut def = webhook_scenario(&rx.url("/y"));
    def["steps"][0]["rateLimit"] = json!(0.01);
    let (status, body) = server.post("/v1/scenarios", &def).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "steps[0].rateLimit");
}
