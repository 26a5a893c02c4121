//! The EMF lines of the Lambda functions (SPEC §11): an event taken by trigger-intake's routes
//! and delivered by webhook-deliver's handler over moto, to a receiver that refuses the first
//! attempt; the lines the recorder writes at the end of the invocations say so, in the
//! embedded metric format CloudWatch reads. Its own test binary: the recorder is the
//! process's one `metrics` recorder.

#[path = "support/functions.rs"]
mod functions;
mod support;

use std::time::Duration;

use functions::*;
use serde_json::Value;
use support::http_event;

/// The lines, parsed; every one checked against the EMF specification's shape.
fn parse(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let directive = &v["_aws"]["CloudWatchMetrics"][0];
            assert!(v["_aws"]["Timestamp"].as_i64().unwrap() > 1_600_000_000_000);
            assert_eq!(directive["Namespace"], "Hookline");
            for dims in directive["Dimensions"].as_array().unwrap() {
                for d in dims.as_array().unwrap() {
                    assert!(v[d.as_str().unwrap()].is_string(), "dimension {d} in {l}");
                }
            }
            for m in directive["Metrics"].as_array().unwrap() {
                let name = m["Name"].as_str().unwrap();
                assert!(v[name].is_number() || v[name].is_array(), "{name} in {l}");
                assert!(["Count", "Milliseconds"].contains(&m["Unit"].as_str().unwrap()));
            }
            assert_eq!(v["Function"], "webhook-deliver");
            v
        })
        .collect()
}

/// The sum of `metric`'s values in lines whose `dimension` is `value`.
fn sum(lines: &[Value], metric: &str, dimension: Option<(&str, &str)>) -> f64 {
    lines
        .iter()
        .filter(|l| dimension.is_none_or(|(k, v)| l[k] == v))
        .filter_map(|l| l.get(metric))
        .map(|v| match v {
            Value::Array(values) => values.iter().map(|x| x.as_f64().unwrap()).sum(),
            one => one.as_f64().unwrap(),
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_functions_write_what_happened_as_emf_lines() {
    let emf = hookline_aws::emf::install(Some("webhook-deliver".into()));
    let (aws, engine, queue, rx, id) = started(1).await;
    emf.take_lines(0); // what setting up recorded

    let intake = hookline_aws::http_api::intake_routes(engine.clone());
    let (status, answer) = call(
        &intake,
        http_event("POST", "/v1/events", Some(KEY), Some(&event("evt-1"))),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    let mut lines = Vec::new();
    lines.extend(emf.take_lines(jiff::Timestamp::now().as_millisecond()));
    for _ in 0..60 {
        pump(&aws, &engine, queue.as_ref()).await;
        lines.extend(emf.take_lines(jiff::Timestamp::now().as_millisecond()));
        if rx.count() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(rx.count(), 2, "refused once, then accepted");
    let lines = parse(&lines);
    assert_eq!(sum(&lines, "EventsTaken", None), 1.0);
    assert_eq!(sum(&lines, "Webhooks", Some(("Outcome", "accepted"))), 1.0);
    assert_eq!(sum(&lines, "Webhooks", Some(("Outcome", "failed"))), 0.0);
    assert_eq!(sum(&lines, "Attempts", Some(("Result", "5xx"))), 1.0);
    assert_eq!(sum(&lines, "Attempts", Some(("Result", "2xx"))), 1.0);
    let durations: Vec<&Value> = lines
        .iter()
        .filter_map(|l| l.get("AttemptDuration"))
        .collect();
    let count: usize = durations
        .iter()
        .map(|v| v.as_array().map_or(1, Vec::len))
        .sum();
    assert_eq!(count, 2, "one duration per attempt: {durations:?}");
    // no label carries a contact, a URL, a key or the scenario
    for l in &lines {
        let text = l.to_string();
        for secret in [KEY, "127.0.0.1", "example.org", id.as_str(), "54321"] {
            assert!(!text.contains(secret), "{text}");
        }
    }
}
