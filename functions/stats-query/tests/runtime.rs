//! The real `stats-query` binary over the Lambda Runtime API (played here on 127.0.0.1), on
//! DynamoDB in moto: one function serves the statistics routes (API Gateway) and the table's
//! stream (the counters), told apart by the event's shape.

#![allow(clippy::unwrap_used)]

#[path = "../../../tests/tests/support/mod.rs"]
mod support;

use hookline_core::domain::retry::RetryPolicy;
use serde_json::{Value, json};
use support::{Aws, http_event};

#[tokio::test(flavor = "multi_thread")]
async fn one_binary_serves_the_statistics_and_keeps_the_counters_from_the_stream() {
    let aws = Aws::fresh(RetryPolicy::default()).await;
    let (engine, id) = support::runtime::active_scenario(&aws, "hk_runtime_stats_key_1").await;
    for n in 1..=2 {
        let event = json!({"id": format!("e{n}"), "type": "group_added", "contact": {"id": n, "email": "a@example.org"}});
        engine.intake(1, event).await.unwrap();
    }
    // their first attempts (refused): each delivery stored, pending
    let mut attempted = 0;
    while attempted < 2 {
        for (receipt, _, body) in aws.receive(&aws.settings.deliver_queue).await {
            let task: hookline_core::ports::Task = serde_json::from_str(&body).unwrap();
            engine.handle(&task).await.unwrap();
            aws.delete(&aws.settings.deliver_queue, &receipt).await;
            attempted += 1;
        }
    }
    // the stream as the event source mapping hands it over (tumbling window: with shardId)
    let shard = "shardId-00000000000000000001-00000001";
    let record = |seq: &str, n: i64| {
        json!({"eventID": seq, "eventName": "INSERT", "eventSource": "aws:dynamodb",
            "eventSourceARN": aws.stream_arn, "dynamodb": {"SequenceNumber": seq,
            "Keys": {"pk": {"S": "DLVS#0123456789abcdef#1"}, "sk": {"S": format!("dlv_rt{n}")}},
            "NewImage": {"pk": {"S": "DLVS#0123456789abcdef#1"}, "sk": {"S": format!("dlv_rt{n}")},
                "account": {"N": "1"}, "scenario_id": {"S": "scn_elsewhere"},
                "step_id": {"S": "hook"}, "status": {"S": "pending"}, "unique": {"BOOL": true}}}})
    };
    let stream = json!({"Records": [record("100", 1), record("101", 2)], "shardId": shard,
        "eventSourceARN": aws.stream_arn, "state": {},
        "window": {"start": "2026-11-27T12:00:00Z", "end": "2026-11-27T12:00:01Z"},
        "isFinalInvokeForWindow": false, "isWindowTerminatedEarly": false});
    let stats = |scenario: &str| -> Value {
        serde_json::from_str(&http_event(
            "GET",
            &format!("/v1/scenarios/{scenario}/steps/hook/stats"),
            Some("hk_runtime_stats_key_1"),
            None,
        ))
        .unwrap()
    };
    let answers = support::runtime::run(
        env!("CARGO_BIN_EXE_stats-query"),
        &aws,
        vec![
            ("req-stream".into(), stream.clone()),
            ("req-again".into(), stream), // handed over twice: counted once
            ("req-http".into(), stats(&id)),
        ],
    )
    .await;
    assert_eq!(answers.len(), 3, "{answers:?}");
    for (req, kind, answer) in &answers[..2] {
        assert_eq!(kind, "response", "{req}: {answer}");
        assert_eq!(answer["batchItemFailures"], json!([]), "{req}: {answer}");
    }
    let counters =
        hookline_core::ports::DeliveryStore::step_counts(&aws.store(), 1, "scn_elsewhere")
            .await
            .unwrap();
    assert_eq!(
        (
            counters[0].passes,
            counters[0].pending,
            counters[0].unique_contacts
        ),
        (2, 2, 2)
    );
    // the statistics route: the two webhooks of the events above, read up to date
    let (req, kind, answer) = &answers[2];
    assert_eq!((req.as_str(), kind.as_str()), ("req-http", "response"));
    assert_eq!(answer["statusCode"], 200, "{answer}");
    let body: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        (body["passes"].clone(), body["pending"].clone()),
        (json!(2), json!(2)),
        "{body}"
    );
}
