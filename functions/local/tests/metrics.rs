//! `GET /metrics` (SPEC §11) of the real `hookline serve`, parsed as Prometheus text after
//! scenarios ran: the counts are what happened (events, webhooks by outcome, attempts by
//! class, durations), the gauges are what the database holds, and no label carries a contact,
//! a URL or a key.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{KEY1, Receiver, ReceiverOptions, Server, contact, webhook_scenario};
use prometheus_parse::{Sample, Scrape, Value as Prom};
use serde_json::{Value, json};

async fn scrape(server: &Server) -> Vec<Sample> {
    let resp = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let kind = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(kind.starts_with("text/plain"), "{kind}");
    let text = resp.text().await.unwrap();
    Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .unwrap()
        .samples
}

/// The value of `metric` with `label` (when given) equal to `value`.
fn value(samples: &[Sample], metric: &str, label: Option<(&str, &str)>) -> f64 {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{metric} {label:?}: {} samples",
        found.len()
    );
    match &found[0].value {
        Prom::Counter(v) | Prom::Gauge(v) | Prom::Untyped(v) => *v,
        other => panic!("{metric}: {other:?}"),
    }
}

fn attempts(samples: &[Sample], result: &str) -> f64 {
    value(samples, "hookline_attempts_total", Some(("result", result)))
}

async fn pending_now(server: &Server, scenarios: &[&str]) -> u64 {
    let mut n = 0;
    for id in scenarios {
        n += server.step_stats(id, "hook").await["pending"]
            .as_u64()
            .unwrap();
    }
    n
}

#[tokio::test]
async fn metrics_count_what_happened() {
    // retries 1 s apart for 2 s
    let server = Server::local("2s", "1s");
    let before = scrape(&server).await;
    assert_eq!(value(&before, "hookline_events_taken_total", None), 0.0);
    assert_eq!(attempts(&before, "2xx"), 0.0);

    // answers 500 once, then 200
    let flaky = Receiver::start(
        "127.0.0.1:0",
        ReceiverOptions {
            fail_first: 1,
            ..ReceiverOptions::default()
        },
    )
    .await
    .unwrap();
    // nothing listens there: every attempt is refused
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}/hooks/none", closed.local_addr().unwrap());
    drop(closed);
    let to_flaky = server
        .active_scenario(&webhook_scenario(&flaky.url("/hooks/crm")))
        .await;
    let mut refused = webhook_scenario(&closed_url);
    refused["trigger"] = json!({"type": "group_added", "groupId": 8});
    let to_closed = server.active_scenario(&refused).await;

    server
        .event("e1", "group_added", contact(1), json!({"groupId": 7}))
        .await;
    server
        .event("e2", "group_added", contact(2), json!({"groupId": 7}))
        .await;
    server
        .event("e3", "group_added", contact(3), json!({"groupId": 8}))
        .await;

    // while work is pending, the gauge is what the statistics say (read around the scrape:
    // when both reads agree, nothing settled in between)
    let mut compared = false;
    for _ in 0..20 {
        let a = pending_now(&server, &[&to_flaky, &to_closed]).await;
        let samples = scrape(&server).await;
        let b = pending_now(&server, &[&to_flaky, &to_closed]).await;
        if a == b && a > 0 {
            assert_eq!(
                value(&samples, "hookline_deliveries_pending", None),
                a as f64
            );
            compared = true;
            break;
        }
    }
    assert!(compared, "no quiet moment with work pending to compare");

    server
        .wait_stats(&to_flaky, "hook", |s| s["accepted"] == 2)
        .await;
    server
        .wait_stats(&to_closed, "hook", |s| s["failed"] == 1)
        .await;
    let made = |list: Vec<Value>| -> u64 {
        list.iter()
            .map(|d| d["attemptCount"].as_u64().unwrap())
            .sum()
    };
    let flaky_attempts = made(server.deliveries(&to_flaky, "hook").await);
    let closed_attempts = made(server.deliveries(&to_closed, "hook").await);
    assert_eq!(flaky_attempts, 3, "one 500, then two 200");
    assert!(closed_attempts >= 2, "{closed_attempts}");

    let samples = scrape(&server).await;
    assert_eq!(value(&samples, "hookline_events_taken_total", None), 3.0);
    let webhooks = |outcome| {
        value(
            &samples,
            "hookline_webhooks_total",
            Some(("outcome", outcome)),
        )
    };
    assert_eq!((webhooks("accepted"), webhooks("failed")), (2.0, 1.0));
    assert_eq!(attempts(&samples, "2xx"), 2.0);
    assert_eq!(attempts(&samples, "5xx"), 1.0);
    assert_eq!(attempts(&samples, "connection"), closed_attempts as f64);
    for other in ["3xx", "4xx", "429", "timeout", "other"] {
        assert_eq!(attempts(&samples, other), 0.0, "{other}");
    }
    // the durations: one observation per attempt
    let histogram = samples
        .iter()
        .find(|s| s.metric == "hookline_attempt_duration_seconds")
        .expect("the attempt duration histogram");
    let Prom::Histogram(buckets) = &histogram.value else {
        panic!("{:?}", histogram.value)
    };
    let all = buckets.iter().find(|b| b.less_than.is_infinite()).unwrap();
    assert_eq!(all.count, (flaky_attempts + closed_attempts) as f64);
    assert!(buckets.len() >= hookline_core::metrics::DURATION_BUCKETS.len());
    // nothing pending or due any more
    assert_eq!(value(&samples, "hookline_deliveries_pending", None), 0.0);
    for kind in ["retry", "wait", "occurrence"] {
        assert_eq!(
            value(&samples, "hookline_timers_due", Some(("kind", kind))),
            0.0
        );
    }

    // labels carry no contact, URL or key
    for s in &samples {
        for (k, v) in s.labels.iter() {
            for secret in [KEY1, "127.0.0.1", "http", "@", "example.org", "hooks"] {
                assert!(!v.contains(secret), "{}{{{k}={v}}}", s.metric);
            }
            assert!(
                ["outcome", "result", "kind", "status", "le", "quantile"].contains(&k.as_str()),
                "{}: label {k}",
                s.metric
            );
        }
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
}
