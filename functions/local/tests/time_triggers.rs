//! Time-based triggers end to end (SPEC §3) on the real `hookline serve`, its clock started a
//! few seconds before the occurrence (`--clock-start`): the webhook a receiver gets, and the
//! ones it does not get (a moved date, an older snapshot, an archived scenario, a restart).

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// 3 seconds before 09:00 UTC on 1 May 2027.
const BEFORE_NINE: &str = "2027-05-01T08:59:57Z";

fn birthday_scenario(url: &str, time: &str) -> Value {
    json!({
        "name": "happy birthday",
        "trigger": {"type": "date_reached", "field": "birthDate", "yearly": true, "time": time},
        "start": "hook",
        "steps": [{"id": "hook", "type": "send_webhook", "url": url,
                   "fields": ["email", "birthDate"], "next": null}]
    })
}

fn person(id: i64, birth: &str) -> Value {
    json!({"id": id, "email": format!("p{id}@example.org"), "birthDate": birth})
}

async fn event_at(server: &Server, id: &str, contact: Value, occurred_at: &str) {
    let (status, body) = server
        .post(
            "/v1/events",
            &json!({"id": id, "type": "contact_updated", "occurredAt": occurred_at,
                    "contact": contact}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
}

/// An event bringing contact `id`'s birth date.
async fn born(server: &Server, event_id: &str, id: i64, birth: &str, occurred_at: &str) {
    event_at(server, event_id, person(id, birth), occurred_at).await;
}

fn emails(rx: &Receiver) -> Vec<String> {
    let mut got: Vec<String> = rx
        .received()
        .iter()
        .map(|r| {
            r.json()["data"]["email"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    got.sort();
    got
}

#[tokio::test]
async fn a_birthday_fires_once_at_its_minute_and_a_moved_date_does_not() {
    let rx = receiver().await;
    let started = std::time::Instant::now();
    let server = Server::start(&[
        "--allow-private-targets",
        "--clock-start",
        "2027-05-01T08:59:54Z",
    ]);
    // stored before the activation: found by the backfill
    born(&server, "e1", 1, "1990-05-01", "2027-05-01T08:00:00Z").await;
    let scenario = server
        .active_scenario(&birthday_scenario(&rx.url("/birthday"), "09:00"))
        .await;
    // after the activation: scheduled with the snapshot
    born(&server, "e2", 2, "1985-05-01", "2027-05-01T08:00:00Z").await;
    born(&server, "e3", 3, "1990-05-02", "2027-05-01T08:00:00Z").await; // tomorrow
    // a date moved away by a newer snapshot does not fire
    born(&server, "e4", 4, "1990-05-01", "2027-05-01T08:00:00Z").await;
    born(&server, "e5", 4, "1990-06-01", "2027-05-01T08:30:00Z").await;
    // an older snapshot arriving late does not move a date back
    born(&server, "e6", 5, "1990-05-01", "2027-05-01T08:30:00Z").await;
    born(&server, "e7", 5, "1990-07-01", "2027-05-01T08:10:00Z").await;

    if started.elapsed() < Duration::from_secs(5) {
        assert!(rx.received().is_empty(), "fired before 09:00");
    }
    let got = rx.wait_for(3, Duration::from_secs(15)).await;
    assert_eq!(got.len(), 3, "{}", server.log());
    // nothing more comes (each fires once; 3, 4 do not fire)
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        emails(&rx),
        vec!["p1@example.org", "p2@example.org", "p5@example.org"]
    );
    // never before 09:00 by the server's clock (the envelope's timestamp is when it fired)
    for r in rx.received() {
        let at: jiff::Timestamp = r.json()["timestamp"].as_str().unwrap().parse().unwrap();
        assert!(
            at >= "2027-05-01T09:00:00Z".parse().unwrap(),
            "fired at {at}"
        );
    }
    let first = &rx.received()[0];
    assert_eq!(
        first.json()["scenario"]["id"],
        scenario.as_str(),
        "{}",
        first.json()
    );
    assert_eq!(
        first.json()["data"]["birthDate"].as_str().map(|d| &d[5..]),
        Some("05-01")
    );
    let stats = server.step_stats(&scenario, "hook").await;
    assert_eq!(
        (stats["passes"].as_u64(), stats["uniqueContacts"].as_u64()),
        (Some(3), Some(3)),
        "{stats}"
    );
}

#[tokio::test]
async fn an_archived_scenario_stops_firing_and_occurrences_less_than_a_day_old_fire_at_once() {
    let rx = receiver().await;
    // 8 s before 09:00: time to archive before it, even on a busy machine
    let started = std::time::Instant::now();
    let server = Server::start(&[
        "--allow-private-targets",
        "--clock-start",
        "2027-05-01T08:59:52Z",
    ]);
    let archived = server
        .active_scenario(&birthday_scenario(&rx.url("/archived"), "09:00"))
        .await;
    // 08:00 today was an hour ago: less than a day old, it fires at once
    let early = server
        .active_scenario(&birthday_scenario(&rx.url("/early"), "08:00"))
        .await;
    born(&server, "e1", 1, "1990-05-01", "2027-05-01T08:00:00Z").await;
    born(&server, "e2", 2, "1990-04-30", "2027-05-01T08:00:00Z").await;
    // the two that fire at once have fired before the archive
    assert_eq!(rx.wait_for(2, Duration::from_secs(5)).await.len(), 2);
    let (status, body) = server
        .request(
            "POST",
            &format!("/v1/scenarios/{archived}/archive"),
            Some(KEY1),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "too slow to archive before 09:00"
    );
    // past 09:00 (server clock): only the hour-old occurrence of the other scenario fired
    tokio::time::sleep(Duration::from_secs(11).saturating_sub(started.elapsed())).await;
    // the rolling 24 hours: at 08:59:52, yesterday's 09:00 is 23 h 59 min old (fires at once,
    // before the archive), yesterday's 08:00 is 25 h old (does not fire)
    let mut got: Vec<(String, String)> = rx
        .received()
        .iter()
        .map(|r| {
            (
                r.path.clone(),
                r.json()["data"]["email"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    got.sort();
    let want = [
        ("/archived", "p2@example.org"),
        ("/early", "p1@example.org"),
    ]
    .map(|(p, e)| (p.to_string(), e.to_string()));
    assert_eq!(got, want, "{}", server.log());
    assert_eq!(server.step_stats(&early, "hook").await["passes"], 1);
}

#[tokio::test]
async fn a_restart_across_the_minute_fires_once() {
    let rx = receiver().await;
    let mut server = Server::start(&["--allow-private-targets", "--clock-start", BEFORE_NINE]);
    let scenario = server
        .active_scenario(&birthday_scenario(&rx.url("/birthday"), "09:00"))
        .await;
    born(&server, "e1", 1, "1990-05-01", "2027-05-01T08:00:00Z").await;
    server.kill9(); // down before 09:00
    // back at 09:00:30: missed while down, it fires now
    server.set_arg("--clock-start", "2027-05-01T09:00:30Z");
    server.restart();
    let got = rx.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1, "{}", server.log());
    // killed right after, and started again: the occurrence is not fired a second time (the
    // receiver may see its webhook again if the kill came before the attempt was recorded:
    // the same delivery, with the same id)
    server.kill9();
    server.set_arg("--clock-start", "2027-05-01T09:01:00Z");
    server.restart();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut ids: Vec<String> = rx
        .received()
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap_or_default().to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}\n{}", server.log());
    let stats = server.step_stats(&scenario, "hook").await;
    assert_eq!(stats["passes"], 1, "{stats}");
}

/// A yearly birthday that fired, then another event for the same contact later that day (whose
/// plan, a rolling 24 hours, finds today's occurrence again): the contact still gets its
/// birthday the next year, and only once this year.
#[tokio::test]
async fn a_yearly_trigger_fires_again_next_year_after_an_event_the_same_day() {
    let rx = receiver().await;
    let mut server = Server::start(&["--allow-private-targets", "--clock-start", BEFORE_NINE]);
    let mut def = birthday_scenario(&rx.url("/birthday"), "09:00");
    def["allowReentry"] = json!(true); // every year
    let scenario = server.active_scenario(&def).await;
    born(&server, "e1", 1, "1990-05-01", "2027-05-01T08:00:00Z").await;
    let got = rx.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1, "{}", server.log());
    // later that day: a new snapshot of the same contact (same birth date)
    born(&server, "e2", 1, "1990-05-01", "2027-05-01T09:00:01Z").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rx.count(), 1, "fired twice this year\n{}", server.log());
    // a year later, 3 seconds before 09:00: it fires again
    server.kill9();
    server.set_arg("--clock-start", "2028-05-01T08:59:57Z");
    server.restart();
    let got = rx.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 2, "no birthday the next year\n{}", server.log());
    let at: jiff::Timestamp = got[1].json()["timestamp"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        at >= "2028-05-01T09:00:00Z".parse().unwrap(),
        "fired at {at}"
    );
    assert_ne!(got[0].json()["id"], got[1].json()["id"]);
    let stats = server.step_stats(&scenario, "hook").await;
    assert_eq!(stats["passes"], 2, "{stats}");
}

#[tokio::test]
async fn time_based_triggers_are_checked_key_by_key() {
    let server = Server::start(&["--allow-private-targets"]);
    let bad = |trigger: Value| {
        json!({"name": "x", "trigger": trigger, "start": "hook", "steps": [
            {"id": "hook", "type": "send_webhook", "url": "http://127.0.0.1:9/x", "next": null}]})
    };
    for (trigger, field) in [
        (json!({"type": "date_reached"}), "trigger.field"),
        (
            json!({"type": "date_reached", "field": "firstname"}),
            "trigger.field",
        ),
        (
            json!({"type": "date_reached", "field": "birthDate", "offsetDays": 400}),
            "trigger.offsetDays",
        ),
        (
            json!({"type": "date_reached", "field": "birthDate", "time": "9:00"}),
            "trigger.time",
        ),
        (
            json!({"type": "date_reached", "field": "birthDate", "timezone": "Mars/Olympus"}),
            "trigger.timezone",
        ),
        (
            json!({"type": "consent_expiring", "yearly": true}),
            "trigger.yearly",
        ),
        (
            json!({"type": "consent_expiring", "daysBefore": -1}),
            "trigger.daysBefore",
        ),
    ] {
        let (status, body) = server.post("/v1/scenarios", &bad(trigger.clone())).await;
        assert_eq!(status, 400, "{trigger}: {body}");
        assert_eq!(body["error"]["field"], field, "{trigger}: {body}");
    }
    let (status, body) = server
        .post(
            "/v1/scenarios",
            &bad(
                json!({"type": "consent_expiring", "daysBefore": 30, "time": "10:30",
                        "timezone": "America/Montreal"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = server.get("/v1/scenarios?limit=100").await;
    assert_eq!(status, 200);
}

/// `consent_expiring`, 30 days before, at 09:00 in Paris (07:00 UTC in May): the contact whose
/// consent expires on 31 May gets its webhook at 07:00 UTC on 1 May; the one expiring on 30 June
/// does not.
#[tokio::test]
async fn consent_expiring_fires_days_before_in_its_time_zone() {
    let rx = receiver().await;
    let server = Server::start(&[
        "--allow-private-targets",
        "--clock-start",
        "2027-05-01T06:59:55Z",
    ]);
    let scenario = json!({
        "name": "renew your consent",
        "trigger": {"type": "consent_expiring", "daysBefore": 30, "time": "09:00",
                    "timezone": "Europe/Paris"},
        "start": "hook",
        "steps": [{"id": "hook", "type": "send_webhook", "url": rx.url("/consent"),
                   "fields": ["email", "consentExpiration"], "next": null}]
    });
    server.active_scenario(&scenario).await;
    for (id, expires) in [(1, "2027-05-31T10:00:00Z"), (2, "2027-06-30T10:00:00Z")] {
        let contact = json!({"id": id, "email": format!("p{id}@example.org"),
                             "consent": {"type": "implied", "expiration": expires}});
        event_at(&server, &format!("c{id}"), contact, "2027-05-01T06:00:00Z").await;
    }
    let got = rx.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(got.len(), 1, "{}", server.log());
    let body = got[0].json();
    assert_eq!(body["data"]["email"], "p1@example.org");
    assert_eq!(body["data"]["consentExpiration"], "2027-05-31T10:00:00Z");
    let at: jiff::Timestamp = body["timestamp"].as_str().unwrap().parse().unwrap();
    assert!(
        at >= "2027-05-01T07:00:00Z".parse().unwrap(),
        "fired at {at}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rx.count(), 1, "{:?}", emails(&rx));
}
