//! Delivery behaviour end to end: the real server, real receivers on 127.0.0.1.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn first_try_acceptance_sends_the_spec_payload() {
    let server = Server::local("8s", "1s");
    let rx = receiver().await;
    let scenario = server
        .active_scenario(&json!({
            "name": "Welcome to CRM",
            "trigger": {"type": "form_subscribed", "formId": 12},
            "start": "to-crm",
            "steps": [{"id": "to-crm", "type": "send_webhook", "url": rx.url("/hooks/new-lead"),
                       "fields": ["email", "firstname", "lastname", "consentType", "customFields.plan", "mailingsCount"],
                       "additional": {"full_name": "{{firstname}} {{lastname}}", "source": "newsletter",
                                      "opens": "{{openedMailingsCount}}", "groups": "{{groups}}"},
                       "headers": {"X-Api-Key": "abc123"}, "next": null}]
        }))
        .await;
    let mut c = contact(54321);
    c["stats"] = json!({"mailingsCount": 12, "openedMailingsCount": 8});
    server
        .event("evt-1", "form_subscribed", c, json!({"formId": 12}))
        .await;

    let got = rx.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.path, "/hooks/new-lead");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-api-key"), Some("abc123"));
    assert!(r.header("user-agent").unwrap().starts_with("Hookline/"));
    let body: Value = r.json();
    // key order is part of the contract: id, event, timestamp, idClient, scenario, data
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["id", "event", "timestamp", "idClient", "scenario", "data"]
    );
    assert!(body["id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(body["event"], "automation.webhook.send");
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(body["idClient"], 1);
    assert_eq!(
        body["scenario"],
        json!({"id": scenario, "stepId": "to-crm"})
    );
    let data = body["data"].as_object().unwrap();
    assert_eq!(
        data.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "type",
            "id",
            "email",
            "firstname",
            "lastname",
            "consentType",
            "customFields",
            "mailingsCount",
            "full_name",
            "source",
            "opens",
            "groups"
        ]
    );
    assert_eq!(
        Value::Object(data.clone()),
        json!({"type": "member", "id": 54321, "email": "c54321@example.org", "firstname": "John", "lastname": "Doe",
               "consentType": "express", "customFields": {"plan": "gold"}, "mailingsCount": 12,
               "full_name": "John Doe", "source": "newsletter", "opens": 8, "groups": [{"id": 7, "name": "Newsletter"}]})
    );
    let stats = server
        .wait_stats(&scenario, "to-crm", |s| s["accepted"] == 1)
        .await;
    assert_eq!(
        stats,
        json!({"stepId": "to-crm", "type": "send_webhook", "passes": 1, "uniqueContacts": 1,
                             "accepted": 1, "pending": 0, "failed": 0})
    );
    let deliveries = server.deliveries(&scenario, "to-crm").await;
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0]["status"], "accepted");
    assert_eq!(deliveries[0]["contactId"], 54321);
    assert_eq!(deliveries[0]["attempts"][0]["status"], 200);
    assert_eq!(deliveries[0]["attempts"][0]["responseSnippet"], "ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_resend_the_same_bytes_until_accepted() {
    let server = Server::local("30s", "1s");
    let rx = receiver().await;
    rx.set_status(503);
    let scenario = server
        .active_scenario(&webhook_scenario(&rx.url("/h")))
        .await;
    server
        .event("evt-r", "group_added", contact(1), json!({"groupId": 7}))
        .await;
    let got = rx.wait_for(2, Duration::from_secs(10)).await;
    assert!(got.len() >= 2);
    let pending = server.step_stats(&scenario, "hook").await;
    assert_eq!(
        (pending["pending"].as_u64(), pending["accepted"].as_u64()),
        (Some(1), Some(0))
    );
    rx.set_status(200);
    server
        .wait_stats(&scenario, "hook", |s| s["accepted"] == 1)
        .await;
    let got = rx.received();
    assert!(
        got.iter().all(|r| r.body == got[0].body),
        "a retry changed the payload"
    );
    let gaps: Vec<f64> = got
        .windows(2)
        .map(|w| w[1].at.duration_since(w[0].at).as_secs_f64())
        .collect();
    assert!(
        gaps.iter().all(|g| *g >= 0.85),
        "a retry came before its 1 s delay (±10 %): {gaps:?}"
    );
    let d = &server.deliveries(&scenario, "hook").await[0];
    let attempts = d["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), got.len());
    assert_eq!(attempts.last().unwrap()["status"], 200);
    assert!(
        attempts[..attempts.len() - 1]
            .iter()
            .all(|a| a["status"] == 503 && a["error"].as_str().unwrap().contains("503"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_last_attempt_is_at_the_deadline_then_failed() {
    let server = Server::local("4s", "1500ms");
    let rx = receiver().await;
    rx.set_status(500);
    let scenario = server
        .active_scenario(&webhook_scenario(&rx.url("/h")))
        .await;
    server
        .event("evt-d", "group_added", contact(1), json!({"groupId": 7}))
        .await;
    let stats = server
        .wait_stats(&scenario, "hook", |s| s["failed"] == 1)
        .await;
    assert_eq!(
        (
            stats["passes"].as_u64(),
            stats["pending"].as_u64(),
            stats["accepted"].as_u64()
        ),
        (Some(1), Some(0), Some(0))
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got = rx.received();
    let d = &server.deliveries(&scenario, "hook").await[0];
    assert_eq!(d["status"], "failed");
    assert_eq!(d["nextAttemptAt"], Value::Null);
    let deadline: jiff::Timestamp = d["deadline"].as_str().unwrap().parse().unwrap();
    let created: jiff::Timestamp = d["createdAt"].as_str().unwrap().parse().unwrap();
    assert_eq!(deadline.duration_since(created).as_secs(), 4);
    // attempts at ~0, ~1.5, ~3, then one at the deadline (4 s): never after it
    assert_eq!(got.len(), d["attempts"].as_array().unwrap().len());
    assert!((3..=5).contains(&got.len()), "{} attempts", got.len());
    let last = got.last().unwrap().at;
    let late = last.duration_since(deadline).as_secs_f64();
    assert!(
        late >= -0.05 && late < 1.0,
        "the last attempt was {late:.3} s from the deadline"
    );
    let attempts = d["attempts"].as_array().unwrap();
    let last_recorded: jiff::Timestamp = attempts.last().unwrap()["at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        last_recorded >= deadline,
        "the last attempt was not at the deadline"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_contact_moves_on_after_the_first_attempt_only() {
    let server = Server::local("60s", "5s");
    let slow_fail = receiver().await;
    slow_fail.set_status(500);
    slow_fail.set_delay(Duration::from_millis(700));
    let next = receiver().await;
    let scenario = server
        .active_scenario(&json!({
            "name": "two hooks", "trigger": {"type": "group_added"}, "start": "first",
            "steps": [
                {"id": "first", "type": "send_webhook", "url": slow_fail.url("/first"), "next": "second"},
                {"id": "second", "type": "send_webhook", "url": next.url("/second"), "next": null}
            ]
        }))
        .await;
    let sent = jiff::Timestamp::now();
    server
        .event("evt-m", "group_added", contact(1), json!({"groupId": 1}))
        .await;
    let got = next.wait_for(1, Duration::from_secs(4)).await;
    assert_eq!(
        got.len(),
        1,
        "the contact did not move on after the first (failed) attempt"
    );
    let first = slow_fail.received();
    assert_eq!(first.len(), 1, "the next step waited for a retry");
    // the first attempt took 700 ms; the next step came only once it had ended
    assert!(
        got[0].at.duration_since(sent).as_secs_f64() >= 0.7,
        "moved on before the first attempt ended"
    );
    let s1 = server.step_stats(&scenario, "first").await;
    assert_eq!(
        (s1["pending"].as_u64(), s1["passes"].as_u64()),
        (Some(1), Some(1))
    );
    server
        .wait_stats(&scenario, "second", |s| s["accepted"] == 1)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn conditions_choose_the_branch() {
    let server = Server::local("8s", "1s");
    let rx = receiver().await;
    let scenario = server
        .active_scenario(&json!({
            "name": "branches", "trigger": {"type": "form_subscribed"}, "start": "is-gold",
            "steps": [
                {"id": "is-gold", "type": "condition",
                 "rule": {"all": [{"field": "customFields.plan", "op": "equals", "value": "GOLD"},
                                  {"any": [{"field": "groups", "op": "inGroup", "value": 7},
                                           {"field": "country", "op": "equals", "value": "CA"}]}]},
                 "yes": "gold", "no": "other"},
                {"id": "gold", "type": "send_webhook", "url": rx.url("/gold"), "next": null},
                {"id": "other", "type": "send_webhook", "url": rx.url("/other"), "next": null}
            ]
        }))
        .await;
    server
        .event("e1", "form_subscribed", contact(1), json!({}))
        .await;
    let mut silver = contact(2);
    silver["customFields"] = json!({"plan": "silver"});
    server
        .event("e2", "form_subscribed", silver, json!({}))
        .await;
    let got = rx.wait_for(2, Duration::from_secs(10)).await;
    let mut paths: Vec<(String, i64)> = got
        .iter()
        .map(|r| (r.path.clone(), r.json()["data"]["id"].as_i64().unwrap()))
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        vec![("/gold".to_string(), 1), ("/other".to_string(), 2)]
    );
    let (_, stats) = server.get(&format!("/v1/scenarios/{scenario}/stats")).await;
    let items = stats["items"].as_array().unwrap();
    assert_eq!(
        items[0],
        json!({"stepId": "is-gold", "type": "condition", "passes": 2, "uniqueContacts": 2})
    );
    assert_eq!(items[1]["passes"], 1);
    assert_eq!(items[2]["passes"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn waits_hold_the_contact_for_their_duration() {
    let server = Server::local("8s", "1s");
    let rx = receiver().await;
    let scenario = server
        .active_scenario(&json!({
            "name": "wait then send", "trigger": {"type": "mailing_opened", "mailingId": 3}, "start": "pause",
            "steps": [
                {"id": "pause", "type": "wait", "duration": "PT2S", "next": "hook"},
                {"id": "hook", "type": "send_webhook", "url": rx.url("/later"), "next": null}
            ]
        }))
        .await;
    let sent = jiff::Timestamp::now();
    server
        .event("e1", "mailing_opened", contact(1), json!({"mailingId": 3}))
        .await;
    server
        .event("e2", "mailing_opened", contact(2), json!({"mailingId": 4}))
        .await; // other mailing: no match
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(rx.count(), 0, "the wait was cut short");
    let wait = server.step_stats(&scenario, "pause").await;
    assert_eq!(wait["passes"], 1);
    let got = rx.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert!(got[0].at.duration_since(sent).as_secs_f64() >= 2.0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.count(), 1, "the unmatched event enrolled a contact");
}

#[tokio::test(flavor = "multi_thread")]
async fn events_are_idempotent_and_reentry_is_opt_in() {
    let server = Server::local("8s", "1s");
    let rx = receiver().await;
    let once = server
        .active_scenario(&webhook_scenario(&rx.url("/once")))
        .await;
    let mut again_def = webhook_scenario(&rx.url("/again"));
    again_def["allowReentry"] = json!(true);
    let again = server.active_scenario(&again_def).await;

    let first = server
        .event("evt-same", "group_added", contact(5), json!({"groupId": 7}))
        .await;
    assert_eq!(first["eventId"], "evt-same");
    assert_eq!(first["enrollments"].as_array().unwrap().len(), 2);
    let repeat = server
        .event("evt-same", "group_added", contact(5), json!({"groupId": 7}))
        .await;
    assert_eq!(repeat, first, "the same event id got another answer");
    let second = server
        .event(
            "evt-other",
            "group_added",
            contact(5),
            json!({"groupId": 7}),
        )
        .await;
    let enrolled: Vec<&str> = second["enrollments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["scenarioId"].as_str().unwrap())
        .collect();
    assert_eq!(enrolled, vec![again.as_str()], "re-entry not as configured");

    server
        .wait_stats(&again, "hook", |s| s["accepted"] == 2)
        .await;
    let once_stats = server
        .wait_stats(&once, "hook", |s| s["accepted"] == 1)
        .await;
    assert_eq!(
        (
            once_stats["passes"].as_u64(),
            once_stats["uniqueContacts"].as_u64()
        ),
        (Some(1), Some(1))
    );
    let again_stats = server.step_stats(&again, "hook").await;
    assert_eq!(
        (
            again_stats["passes"].as_u64(),
            again_stats["uniqueContacts"].as_u64()
        ),
        (Some(2), Some(1))
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let paths: Vec<String> = rx.received().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths.iter().filter(|p| *p == "/once").count(), 1);
    assert_eq!(paths.iter().filter(|p| *p == "/again").count(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_snapshot_of_the_latest_event_is_used() {
    let server = Server::local("8s", "1s");
    let rx = receiver().await;
    let scenario = server
        .active_scenario(&json!({
            "name": "wait then send", "trigger": {"type": "group_added"}, "start": "pause",
            "steps": [
                {"id": "pause", "type": "wait", "duration": "PT1S", "next": "hook"},
                {"id": "hook", "type": "send_webhook", "url": rx.url("/h"), "fields": ["firstname"], "next": null}
            ]
        }))
        .await;
    server
        .event("e1", "group_added", contact(9), json!({}))
        .await;
    let mut renamed = contact(9);
    renamed["firstname"] = json!("Johnny");
    server
        .event("e2", "contact_updated", renamed, json!({}))
        .await;
    let got = rx.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].json()["data"]["firstname"], "Johnny");
    server
        .wait_stats(&scenario, "hook", |s| s["accepted"] == 1)
        .await;
}

/// A payload past 256 KiB once rendered (SPEC §5): ten keys of 512 `{{note}}` with an 8 KB note
/// would make a 41 MB webhook. The delivery fails at once with the size it would have had,
/// counted as a pass and as failed; the receiver gets nothing; the contact moves on; another
/// contact with a short note gets its webhook.
#[tokio::test(flavor = "multi_thread")]
async fn a_payload_past_256_kib_fails_at_once_and_is_never_sent() {
    let server = Server::local("8s", "1s");
    let rx = receiver().await;
    let additional: serde_json::Map<String, Value> = (0..10)
        .map(|i| (format!("k{i}"), json!("{{note}}".repeat(512))))
        .collect();
    let scenario = server
        .active_scenario(&json!({
            "name": "too much",
            "trigger": {"type": "group_added", "groupId": 7},
            "start": "hook",
            "steps": [{"id": "hook", "type": "send_webhook", "url": rx.url("/big"),
                       "fields": ["email"], "additional": additional, "next": "after"},
                      {"id": "after", "type": "wait", "duration": "PT1H", "next": null}]
        }))
        .await;
    let mut big = contact(1);
    big["note"] = json!("n".repeat(8_000));
    server
        .event("evt-big", "group_added", big, json!({"groupId": 7}))
        .await;
    let mut small = contact(2);
    small["note"] = json!("n");
    server
        .event("evt-small", "group_added", small, json!({"groupId": 7}))
        .await;
    let stats = server
        .wait_stats(&scenario, "hook", |s| {
            s["failed"] == 1 && s["accepted"] == 1
        })
        .await;
    assert_eq!(
        (stats["passes"].clone(), stats["pending"].clone()),
        (json!(2), json!(0)),
        "{stats}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = rx.received();
    assert_eq!(got.len(), 1, "the oversized payload was sent");
    assert_eq!(got[0].json()["data"]["email"], "c2@example.org");
    let failed: Vec<Value> = server
        .deliveries(&scenario, "hook")
        .await
        .into_iter()
        .filter(|d| d["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["contactId"], 1);
    assert_eq!(failed[0]["nextAttemptAt"], Value::Null);
    let error = failed[0]["attempts"][0]["error"]
        .as_str()
        .unwrap_or_default();
    let size: u64 = error
        .strip_prefix("payload too large: ")
        .and_then(|e| e.strip_suffix(" bytes (limit 262144)"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{}", failed[0]));
    assert!(size > 40_000_000, "{size}");
    assert_eq!(failed[0]["attempts"][0]["status"], Value::Null);
    // the contact moved on to the wait as after any first attempt
    let after = server.step_stats(&scenario, "after").await;
    assert_eq!(after["passes"], 2, "{after}");
}

/// Resends are bounded work (SPEC §7): `resend-failed` asked twice for six failed deliveries
/// toward a receiver that now takes 3 s resends each once, and a first attempt toward another
/// receiver made meanwhile is not held up behind them (resends hold at most a quarter of the
/// slots).
#[tokio::test(flavor = "multi_thread")]
async fn resends_run_once_each_and_never_hold_up_first_attempts() {
    let server = Server::start(&[
        "--allow-private-targets",
        "--retry-window",
        "1s",
        "--retry-delays",
        "1s",
        "--workers",
        "8",
    ]);
    let slow = receiver().await;
    slow.set_status(500);
    let failing = server
        .active_scenario(&webhook_scenario(&slow.url("/slow")))
        .await;
    let events: Vec<Value> = (1..=6)
        .map(|i| {
            json!({"id": format!("f{i}"), "type": "group_added", "contact": contact(i),
                        "context": {"groupId": 7}})
        })
        .collect();
    let (status, body) = server
        .post("/v1/events/batch", &json!({"events": events}))
        .await;
    assert_eq!(status, 200, "{body}");
    server
        .wait_stats(&failing, "hook", |s| s["failed"] == 6)
        .await;
    slow.set_status(200);
    slow.set_delay(Duration::from_secs(3));
    let resend = format!("/v1/scenarios/{failing}/steps/hook/resend-failed");
    for _ in 0..2 {
        let (status, body) = server
            .post(&resend, &json!({"since": "2000-01-01T00:00:00Z"}))
            .await;
        assert_eq!(status, 202, "{body}");
    }
    // a first attempt toward another receiver, meanwhile
    let fast = receiver().await;
    let mut other = webhook_scenario(&fast.url("/fast"));
    other["trigger"] = json!({"type": "form_subscribed"});
    server.active_scenario(&other).await;
    let asked = std::time::Instant::now();
    server
        .event(
            "new-1",
            "form_subscribed",
            contact(99),
            json!({"formId": 1}),
        )
        .await;
    let got = fast.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 1);
    assert!(
        asked.elapsed() < Duration::from_millis(1_500),
        "a first attempt waited {:?} behind resends",
        asked.elapsed()
    );
    let stats = server
        .wait_stats(&failing, "hook", |s| s["accepted"] == 6)
        .await;
    assert_eq!(stats["failed"], 0, "{stats}");
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let resent: Vec<String> = slow
        .received()
        .iter()
        .filter(|r| r.answered == 200)
        .map(|r| r.json()["id"].as_str().unwrap_or_default().to_string())
        .collect();
    let mut distinct = resent.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        (resent.len(), distinct.len()),
        (6, 6),
        "a delivery was resent twice"
    );
}
