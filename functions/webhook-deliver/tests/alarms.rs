//! Every metric filter of infra/template.yaml matches a line its function really writes: the
//! real binary runs the code path the metric counts, at the template's `RUST_LOG` level, over
//! DynamoDB and SQS in moto, and the filter's pattern is applied to the JSON lines it printed.

#![allow(clippy::unwrap_used)]

#[path = "../../../tests/tests/support/mod.rs"]
mod support;

use std::time::Duration;

use hookline_core::domain::retry::RetryPolicy;
use serde_json::{Value, json};
use serde_yaml::Value as Yaml;
use support::{Aws, sqs_event};

/// The `!Ref` / `!Sub` / `!GetAtt` tag's value, or the plain value.
fn untagged(v: &Yaml) -> &Yaml {
    match v {
        Yaml::Tagged(t) => &t.value,
        other => other,
    }
}

/// The function whose log group `group` (a `LogGroup` resource's logical id) is:
/// `/aws/lambda/${Function}`.
fn function_of_log_group(template: &Yaml, group: &str) -> String {
    let name = untagged(&template["Resources"][group]["Properties"]["LogGroupName"]);
    let name = name.as_str().unwrap();
    let function = name
        .strip_prefix("/aws/lambda/${")
        .and_then(|n| n.strip_suffix('}'))
        .unwrap_or_else(|| panic!("log group {group} is not a function's: {name}"));
    function.to_string()
}

/// The `RUST_LOG` a function runs with: its own environment's, else the globals'.
fn rust_log(template: &Yaml, function: &str) -> String {
    let own =
        &template["Resources"][function]["Properties"]["Environment"]["Variables"]["RUST_LOG"];
    let global = &template["Globals"]["Function"]["Environment"]["Variables"]["RUST_LOG"];
    own.as_str()
        .or(global.as_str())
        .unwrap_or_else(|| panic!("{function} runs without RUST_LOG"))
        .to_string()
}

/// Does a JSON log line match a CloudWatch JSON filter pattern? Only the forms the template
/// uses are known (`{ $.a.b = "text" }`, `= 12`, `!=`, joined by `&&`); any other form fails
/// the test, to be taught here before the template may use it.
fn matches(pattern: &str, line: &Value) -> bool {
    let body = pattern
        .trim()
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or_else(|| panic!("not a JSON filter pattern: {pattern}"));
    body.split("&&").all(|term| {
        let (path, negate, expected) = match term.split_once("!=") {
            Some((p, v)) => (p, true, v),
            None => {
                let (p, v) = term
                    .split_once('=')
                    .unwrap_or_else(|| panic!("an unknown term in {pattern}: {term}"));
                (p, false, v)
            }
        };
        let path = path.trim().strip_prefix("$.").unwrap();
        assert!(
            !path.contains(['[', '*']),
            "an unknown selector in {pattern}"
        );
        let pointer = format!("/{}", path.replace('.', "/"));
        let expected = expected.trim();
        let found = line.pointer(&pointer);
        let equal = match expected.strip_prefix('"').and_then(|e| e.strip_suffix('"')) {
            Some(text) => found.and_then(Value::as_str) == Some(text),
            None => {
                let n: f64 = expected
                    .parse()
                    .unwrap_or_else(|_| panic!("an unknown value in {pattern}: {expected}"));
                found.and_then(Value::as_f64) == Some(n)
            }
        };
        equal != negate
    })
}

/// webhook-deliver's failed delivery: a first attempt that comes after its delivery's
/// deadline (a 2 s retry window) to a receiver that refuses it. Returns its log output.
async fn webhook_deliver_fails_a_delivery(level: &str) -> String {
    let aws = Aws::fresh(RetryPolicy::parse("2s", "1s").unwrap()).await;
    let (engine, id) = support::runtime::active_scenario(&aws, "hk_alarm_test_key_1").await;
    engine
        .intake(
            1,
            json!({"id": "e1", "type": "group_added", "contact": {"id": 7, "email": "a@example.org"}}),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let s = &aws.settings;
    let queued = aws.receive(&s.deliver_queue).await;
    assert_eq!(queued.len(), 1, "the first attempt's message: {queued:?}");
    let (answers, logs) = support::runtime::run_logged(
        env!("CARGO_BIN_EXE_webhook-deliver"),
        &aws,
        vec![(
            "req-1".to_string(),
            sqs_event(&s.deliver_queue.arn, &queued),
        )],
        Some(level),
    )
    .await;
    assert_eq!(
        answers,
        vec![(
            "req-1".to_string(),
            "response".to_string(),
            json!({"batchItemFailures": []})
        )],
        "{logs}"
    );
    // the delivery is failed, as its statistics show
    aws.settle().await;
    let stats = engine.step_stats(1, &id, "hook").await.unwrap();
    assert_eq!(stats.failed, Some(1), "{stats:?}");
    logs
}

#[tokio::test(flavor = "multi_thread")]
async fn every_metric_filter_matches_a_line_its_function_writes_at_its_log_level() {
    let template = support::template();
    let filters: Vec<(String, Yaml)> = template["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Logs::MetricFilter"))
        .map(|(name, r)| (name.as_str().unwrap().to_string(), r["Properties"].clone()))
        .collect();
    assert!(!filters.is_empty());
    for (name, props) in filters {
        let group = untagged(&props["LogGroupName"])
            .as_str()
            .unwrap()
            .to_string();
        let pattern = props["FilterPattern"].as_str().unwrap();
        let function = function_of_log_group(&template, &group);
        let level = rust_log(&template, &function);
        let logs = match (function.as_str(), name.as_str()) {
            ("WebhookDeliverFunction", "FailedDeliveriesMetric") => {
                webhook_deliver_fails_a_delivery(&level).await
            }
            _ => panic!(
                "metric filter {name} ({function}): no run of its function here writes the line \
                 it counts; add one"
            ),
        };
        let lines: Vec<Value> = logs
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let counted = lines.iter().filter(|l| matches(pattern, l)).count();
        assert_eq!(
            counted, 1,
            "{name} ({pattern}) over {function}'s output at RUST_LOG={level}:\n{logs}"
        );
    }
}

#[test]
fn the_pattern_matcher_reads_the_forms_it_knows() {
    let line = json!({"level": "WARN", "fields": {"outcome": "failed", "attempt": 3}});
    assert!(matches(r#"{ $.fields.outcome = "failed" }"#, &line));
    assert!(!matches(r#"{ $.fields.outcome = "accepted" }"#, &line));
    assert!(matches(r#"{ $.fields.outcome != "accepted" }"#, &line));
    assert!(matches(
        r#"{ $.fields.outcome = "failed" && $.fields.attempt = 3 }"#,
        &line
    ));
    assert!(!matches(r#"{ $.fields.missing = "failed" }"#, &line));
}
