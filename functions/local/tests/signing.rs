//! Signed webhooks (SPEC §5) and resends (SPEC §7) through the real `hookline serve`, with
//! signatures checked by the reference verifiers nobody here wrote: the PyPI packages
//! `standardwebhooks` and `svix`, from the venv scripts/test.sh makes (HOOKLINE_TEST_PYTHON).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use hookline_core::domain::signing;
use hookline_local::receiver::Received;
use serde_json::{Value, json};

fn reference_verdicts(secret: &str, r: &Received, body: &str, late_seconds: u64) -> Value {
    hookline_local::receiver::reference_verdicts(secret, r, body, late_seconds)
}

fn both_accept(v: &Value) -> bool {
    v["standardwebhooks"] == "ok" && v["svix"] == "ok"
}

fn both_refuse(v: &Value) -> bool {
    v["standardwebhooks"]
        .as_str()
        .unwrap()
        .starts_with("refused")
        && v["svix"].as_str().unwrap().starts_with("refused")
}

async fn secret_of(server: &Server, scenario: &str, step: &str) -> (u16, Value) {
    server
        .get(&format!("/v1/scenarios/{scenario}/steps/{step}/secret"))
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_are_signed_and_the_reference_libraries_verify_them_across_a_rotation() {
    let server = Server::local("60s", "1s");
    let rx = receiver().await;
    let id = server
        .active_scenario(&webhook_scenario(&rx.url("/hook")))
        .await;
    let (status, first) = secret_of(&server, &id, "hook").await;
    assert_eq!(status, 200, "{first}");
    let secret1 = first["secret"].as_str().unwrap().to_string();
    assert!(secret1.starts_with("whsec_"));
    assert_eq!(signing::key_of(&secret1).unwrap().len(), 32);
    assert_eq!(first["previousValidUntil"], Value::Null);

    server
        .event("e1", "group_added", contact(1), json!({"groupId": 7}))
        .await;
    let got = rx.wait_for(1, Duration::from_secs(10)).await;
    let r = &got[0];
    let body = r.json();
    assert_eq!(
        r.header("webhook-id"),
        body["id"].as_str(),
        "webhook-id is the envelope id"
    );
    let ts: i64 = r.header("webhook-timestamp").unwrap().parse().unwrap();
    assert!((jiff::Timestamp::now().as_second() - ts).abs() <= 5);
    assert_eq!(r.header("webhook-signature").unwrap().split(' ').count(), 1);
    let v = reference_verdicts(&secret1, r, &r.body, 0);
    assert!(both_accept(&v), "{v}");
    // a tampered body, a wrong secret, a request replayed 10 minutes later: refused
    let tampered = r.body.replace("c1@example.org", "c2@example.org");
    assert_ne!(tampered, r.body);
    let v = reference_verdicts(&secret1, r, &tampered, 0);
    assert!(both_refuse(&v), "{v}");
    let v = reference_verdicts(&signing::new_secret(), r, &r.body, 0);
    assert!(both_refuse(&v), "{v}");
    let v = reference_verdicts(&secret1, r, &r.body, 600);
    assert!(both_refuse(&v), "{v}");

    // rotation: a new secret, the previous one valid 24 hours more, both signatures sent
    let (status, rotated) = server
        .request(
            "POST",
            &format!("/v1/scenarios/{id}/steps/hook/secret/rotate"),
            Some(KEY1),
            None,
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let secret2 = rotated["secret"].as_str().unwrap().to_string();
    assert_ne!(secret2, secret1);
    let until: jiff::Timestamp = rotated["previousValidUntil"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let in_24h = jiff::Timestamp::now().as_second() + 24 * 3600;
    assert!((until.as_second() - in_24h).abs() <= 5, "{rotated}");
    assert_eq!(secret_of(&server, &id, "hook").await.1, rotated);

    server
        .event("e2", "group_added", contact(2), json!({"groupId": 7}))
        .await;
    let got = rx.wait_for(2, Duration::from_secs(10)).await;
    let r = &got[1];
    assert_eq!(r.header("webhook-signature").unwrap().split(' ').count(), 2);
    for secret in [&secret1, &secret2] {
        let v = reference_verdicts(secret, r, &r.body, 0);
        assert!(both_accept(&v), "{v}");
    }
    let v = reference_verdicts(&secret2, r, &r.body.replace("c2@", "c3@"), 0);
    assert!(both_refuse(&v), "{v}");

    // another account sees nothing
    let (status, _) = server
        .request(
            "GET",
            &format!("/v1/scenarios/{id}/steps/hook/secret"),
            Some(KEY2),
            None,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_follow_the_steps_through_duplicate_and_edit_and_unsigned_steps_send_none() {
    let server = Server::local("60s", "1s");
    let rx = receiver().await;
    let mut def = webhook_scenario(&rx.url("/hook"));
    let (_, created) = server.post("/v1/scenarios", &def).await;
    let id = created["id"].as_str().unwrap().to_string();
    assert!(created.get("secrets").is_none() && !created.to_string().contains("whsec_"));
    let secret = secret_of(&server, &id, "hook").await.1["secret"].clone();

    // PUT keeps the secret of a step id that remains, makes one for a new step
    def["steps"][0]["next"] = json!("second");
    def["steps"].as_array_mut().unwrap().push(
        json!({"id": "second", "type": "send_webhook", "url": rx.url("/second"), "next": null}),
    );
    let (status, body) = server
        .request(
            "PUT",
            &format!("/v1/scenarios/{id}"),
            Some(KEY1),
            Some(&def),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(secret_of(&server, &id, "hook").await.1["secret"], secret);
    let second = secret_of(&server, &id, "second").await.1["secret"].clone();
    assert!(second.as_str().unwrap().starts_with("whsec_") && second != secret);

    // duplicate copies them
    let (status, copy) = server
        .request(
            "POST",
            &format!("/v1/scenarios/{id}/duplicate"),
            Some(KEY1),
            None,
        )
        .await;
    assert_eq!(status, 201);
    let copy = copy["id"].as_str().unwrap();
    assert_eq!(secret_of(&server, copy, "hook").await.1["secret"], secret);
    assert_eq!(secret_of(&server, copy, "second").await.1["secret"], second);

    // `signing: false`: no secret, no signature headers
    let mut unsigned = webhook_scenario(&rx.url("/unsigned"));
    unsigned["steps"][0]["signing"] = json!(false);
    let plain = server.active_scenario(&unsigned).await;
    let (status, body) = secret_of(&server, &plain, "hook").await;
    assert_eq!(status, 404, "{body}");
    server
        .event("e1", "group_added", contact(1), json!({"groupId": 7}))
        .await;
    let got = rx.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].path, "/unsigned");
    assert!(got[0].header("webhook-signature").is_none());
    assert!(got[0].header("webhook-id").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_test_button_signs_with_a_given_secret_and_hookline_receive_verifies() {
    let server = Server::local("60s", "1s");
    // `hookline receive --secret`: the real binary, printing its verdicts
    let secret = signing::new_secret();
    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_hookline"))
            .args(["receive", "--listen", "127.0.0.1:0", "--secret", &secret])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let url = first
        .strip_prefix("receiving webhooks on ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_string();
    let (tx, printed) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let verdict = |want: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while let Ok(line) = printed.recv_timeout(deadline - std::time::Instant::now()) {
            if line.trim_start().starts_with("signature:") {
                assert!(line.contains(want), "{line}");
                return;
            }
        }
        panic!("hookline receive printed no verdict");
    };

    let (status, answer) = server
        .post("/v1/webhooks/test", &json!({"url": url, "secret": secret}))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], true, "{answer}");
    verdict("signature: valid");

    let (_, answer) = server
        .post(
            "/v1/webhooks/test",
            &json!({"url": url, "secret": signing::new_secret()}),
        )
        .await;
    assert_eq!(answer["accepted"], false);
    assert_eq!(answer["status"], 401, "a verifying receiver refuses it");
    verdict("signature: INVALID (no signature matches)");

    let (_, answer) = server.post("/v1/webhooks/test", &json!({"url": url})).await;
    assert_eq!(answer["status"], 401);
    verdict("signature: INVALID (header webhook-id is missing)");

    let (status, body) = server
        .post(
            "/v1/webhooks/test",
            &json!({"url": url, "secret": "sk_live_123"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["field"], "secret", "{body}");
}

/// A child process killed when the test ends, passed or not.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_delivery_is_resent_with_the_same_bytes_and_counted_accepted() {
    let server = Server::local("2s", "1s");
    let rx = Receiver::start(
        "127.0.0.1:0",
        ReceiverOptions {
            status: 500,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let id = server
        .active_scenario(&webhook_scenario(&rx.url("/hook")))
        .await;
    for c in 1..=3 {
        server
            .event(
                &format!("e{c}"),
                "group_added",
                contact(c),
                json!({"groupId": 7}),
            )
            .await;
    }
    server.wait_stats(&id, "hook", |s| s["failed"] == 3).await;
    let items = server.deliveries(&id, "hook").await;
    let delivery = items[0]["id"].as_str().unwrap().to_string();
    let attempts = items[0]["attempts"].as_array().unwrap().len();
    let resend = format!("/v1/scenarios/{id}/steps/hook/deliveries/{delivery}/resend");

    // refused again: it stays failed, with one attempt more
    let before = rx.count();
    let (status, body) = server.request("POST", &resend, Some(KEY1), None).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["id"], json!(delivery));
    assert_eq!(body["status"], "failed");
    rx.wait_for(before + 1, Duration::from_secs(10)).await;
    let mut now = Value::Null;
    for _ in 0..100 {
        now = server.deliveries(&id, "hook").await[0].clone();
        if now["attempts"].as_array().unwrap().len() == attempts + 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        now["attempts"].as_array().unwrap().len(),
        attempts + 1,
        "{now}"
    );
    assert_eq!(now["status"], "failed");
    let stats = server.step_stats(&id, "hook").await;
    assert_eq!(
        (stats["failed"].clone(), stats["accepted"].clone()),
        (json!(3), json!(0))
    );

    // accepted: failed → accepted, the same bytes and id as the first attempt
    rx.set_status(200);
    let (status, _) = server.request("POST", &resend, Some(KEY1), None).await;
    assert_eq!(status, 202);
    let stats = server.wait_stats(&id, "hook", |s| s["accepted"] == 1).await;
    assert_eq!(
        stats,
        json!({"stepId": "hook", "type": "send_webhook", "passes": 3, "uniqueContacts": 3,
               "accepted": 1, "pending": 0, "failed": 2})
    );
    let got = rx.received();
    let mine: Vec<&Received> = got
        .iter()
        .filter(|r| r.json()["data"]["id"] == items[0]["contactId"])
        .collect();
    assert!(mine.len() >= 3);
    assert!(
        mine.iter().all(|r| r.body == mine[0].body),
        "a resend changed the bytes"
    );
    let (status, body) = server.request("POST", &resend, Some(KEY1), None).await;
    assert_eq!(status, 409, "an accepted delivery is not resent: {body}");

    // every failed one since a time
    let all = format!("/v1/scenarios/{id}/steps/hook/resend-failed");
    let (status, body) = server
        .post(&all, &json!({"since": "2999-01-01T00:00:00Z"}))
        .await;
    assert_eq!((status, body), (202, json!({"queued": 0})));
    let (status, body) = server
        .post(&all, &json!({"since": "2020-01-01T00:00:00Z"}))
        .await;
    assert_eq!((status, body), (202, json!({"queued": 2})));
    let stats = server.wait_stats(&id, "hook", |s| s["accepted"] == 3).await;
    assert_eq!(
        (stats["failed"].clone(), stats["pending"].clone()),
        (json!(0), json!(0))
    );

    // what is refused
    let (status, body) = server.post(&all, &json!({"since": "yesterday"})).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["field"], "since", "{body}");
    let (status, _) = server
        .request(
            "POST",
            &format!("/v1/scenarios/{id}/steps/hook/deliveries/dlv_unknown/resend"),
            Some(KEY1),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = server.request("POST", &resend, Some(KEY2), None).await;
    assert_eq!(status, 404, "another account's delivery");
}
