//! `POST /v1/events/batch` (SPEC §3): up to 100 events in one request, each exactly as if sent
//! alone; an invalid one is answered in its place while the others go through.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn event(id: &str, contact: Value) -> Value {
    json!({"id": id, "type": "group_added", "contact": contact, "context": {"groupId": 7}})
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_answers_each_event_in_order_and_delivers_the_valid_ones_once() {
    let server = Server::local("30s", "1s");
    let rx = receiver().await;
    let id = server
        .active_scenario(&webhook_scenario(&rx.url("/h")))
        .await;
    let batch = json!({"events": [
        event("b1", contact(1)),
        event("b-bad", json!({"id": 2})),
        event("b2", contact(3)),
        event("b1", contact(1)),
    ]});
    let (status, body) = server.post("/v1/events/batch", &batch).await;
    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    assert_eq!(items[0]["eventId"], "b1");
    assert_eq!(items[0]["enrollments"][0]["scenarioId"], id.as_str());
    assert_eq!(items[1]["eventId"], "b-bad");
    assert_eq!(items[1]["error"]["field"], "contact.email", "{}", items[1]);
    assert!(items[1]["error"]["code"].is_string() && items[1]["error"]["message"].is_string());
    assert_eq!(items[2]["eventId"], "b2");
    assert_eq!(
        items[3], items[0],
        "the same id twice is one event, with the first answer"
    );

    let got = rx.wait_for(2, Duration::from_secs(10)).await;
    let mut contacts: Vec<i64> = got
        .iter()
        .map(|r| r.json()["data"]["id"].as_i64().unwrap())
        .collect();
    contacts.sort();
    assert_eq!(contacts, vec![1, 3]);

    // the same batch again: the same answers, nobody enrolled twice
    let (status, again) = server.post("/v1/events/batch", &batch).await;
    assert_eq!(status, 200);
    assert_eq!(again, body);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.count(), 2);
    let stats = server.step_stats(&id, "hook").await;
    assert_eq!(
        (stats["passes"].as_u64(), stats["accepted"].as_u64()),
        (Some(2), Some(2))
    );
    // each event is also known alone
    let (status, alone) = server.post("/v1/events", &event("b2", contact(3))).await;
    assert_eq!((status, &alone), (202, &items[2]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_batch_is_refused_whole_and_stores_nothing() {
    let server = Server::local("30s", "1s");
    let rx = receiver().await;
    let id = server
        .active_scenario(&webhook_scenario(&rx.url("/h")))
        .await;
    let many: Vec<Value> = (0..101)
        .map(|i| event(&format!("m{i}"), contact(i)))
        .collect();
    let cases = [
        (json!({"events": many}), "events"),
        (json!({"events": "x"}), "events"),
        (json!({}), "events"),
        (json!({"events": [], "extra": 1}), "extra"),
    ];
    for (body, field) in cases {
        let (status, answer) = server.post("/v1/events/batch", &body).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
    }
    // up to 1 MiB is taken (more than a single event's 256 KiB), past it 413
    let note = "n".repeat(4_000);
    let big: Vec<Value> = (0..100)
        .map(|i| {
            let mut c = contact(500 + i);
            c["note"] = json!(note);
            event(&format!("big{i}"), c)
        })
        .collect();
    let (status, answer) = server
        .post("/v1/events/batch", &json!({"events": big}))
        .await;
    assert_eq!(status, 200, "{answer}");
    let huge: Vec<Value> = (0..100)
        .map(|i| {
            let mut c = contact(700 + i);
            c["note"] = json!("h".repeat(11_000));
            event(&format!("huge{i}"), c)
        })
        .collect();
    let (status, answer) = server
        .post("/v1/events/batch", &json!({"events": huge}))
        .await;
    assert_eq!(status, 413, "{answer}");
    let (status, _) = server
        .request(
            "POST",
            "/v1/events/batch",
            None,
            Some(&json!({"events": []})),
        )
        .await;
    assert_eq!(status, 401);
    rx.wait_for(100, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats = server.step_stats(&id, "hook").await;
    assert_eq!(
        stats["passes"], 100,
        "only the 1 MiB batch went through: {stats}"
    );
}

/// Events of one contact in a batch apply in their order: the snapshot a later step reads is
/// the batch's last one for that contact.
#[tokio::test(flavor = "multi_thread")]
async fn a_contacts_events_in_a_batch_apply_in_order() {
    let server = Server::local("30s", "1s");
    let rx = receiver().await;
    server
        .active_scenario(&json!({
            "name": "later", "trigger": {"type": "group_added"}, "start": "pause",
            "steps": [{"id": "pause", "type": "wait", "duration": "PT1S", "next": "hook"},
                      {"id": "hook", "type": "send_webhook", "url": rx.url("/h"),
                       "fields": ["customFields.plan"], "next": null}]
        }))
        .await;
    let mut events = Vec::new();
    for (i, plan) in ["free", "basic", "pro"].iter().enumerate() {
        let mut c = contact(9);
        c["customFields"] = json!({"plan": plan});
        let kind = if i == 0 {
            "group_added"
        } else {
            "contact_updated"
        };
        events.push(json!({"id": format!("order-{i}"), "type": kind, "contact": c, "context": {"groupId": 1}}));
    }
    let (status, body) = server
        .post("/v1/events/batch", &json!({"events": events}))
        .await;
    assert_eq!(status, 200, "{body}");
    let got = rx.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].json()["data"]["customFields"]["plan"], "pro");
}

/// An event of a batch is held to the limit of one sent alone (256 KiB): a 300 KB one gets its
/// own error item (`event_too_large`), stores nothing, and the others go through.
#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_event_in_a_batch_gets_its_own_error_and_the_others_go_through() {
    let server = Server::local("30s", "1s");
    let rx = receiver().await;
    let id = server
        .active_scenario(&webhook_scenario(&rx.url("/h")))
        .await;
    let mut large = contact(2);
    large["note"] = json!("n".repeat(300_000));
    let batch = json!({"events": [
        event("s1", contact(1)),
        event("s-large", large),
        event("s3", contact(3)),
    ]});
    let (status, body) = server.post("/v1/events/batch", &batch).await;
    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["enrollments"][0]["scenarioId"], id.as_str());
    assert_eq!(items[1]["eventId"], "s-large");
    assert_eq!(items[1]["error"]["code"], "event_too_large", "{}", items[1]);
    assert_eq!(items[1].get("enrollments"), None);
    assert_eq!(items[2]["enrollments"][0]["scenarioId"], id.as_str());
    let got = rx.wait_for(2, Duration::from_secs(10)).await;
    let mut contacts: Vec<i64> = got
        .iter()
        .map(|r| r.json()["data"]["id"].as_i64().unwrap())
        .collect();
    contacts.sort();
    assert_eq!(contacts, vec![1, 3]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.count(), 2);
    // nothing of it was stored: the same id, now small, is a new event
    let (status, alone) = server
        .post("/v1/events", &event("s-large", contact(2)))
        .await;
    assert_eq!(status, 202, "{alone}");
    assert_eq!(alone["enrollments"][0]["scenarioId"], id.as_str());
}
