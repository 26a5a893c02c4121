//! The HTTP API: keys, tenant isolation, lifecycle, bad input, the Test button, OpenAPI.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn keys_health_openapi_and_placeholders() {
    let server = Server::local("8s", "1s");
    let (status, body) = server.request("GET", "/healthz", None, None).await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));
    let (status, doc) = server.request("GET", "/v1/openapi.json", None, None).await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/v1/events",
        "/v1/scenarios",
        "/v1/scenarios/{id}",
        "/v1/scenarios/{id}/activate",
        "/v1/scenarios/{id}/archive",
        "/v1/scenarios/{id}/duplicate",
        "/v1/webhooks/test",
        "/v1/placeholders",
        "/v1/scenarios/{id}/stats",
        "/v1/scenarios/{id}/steps/{step}/stats",
        "/v1/scenarios/{id}/steps/{step}/deliveries",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI description"
        );
    }
    for (key, expected) in [
        (None, 401),
        (Some("hk_not_a_known_key_at_all"), 401),
        (Some(KEY1), 200),
    ] {
        let (status, body) = server.request("GET", "/v1/scenarios", key, None).await;
        assert_eq!(status, expected, "{body}");
        if status == 401 {
            assert_eq!(body["error"]["code"], "unauthorized");
        }
    }
    let (status, body) = server.get("/v1/placeholders").await;
    assert_eq!(status, 200);
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 32);
    assert!(
        items.contains(
            &json!({"key": "consentIp", "label": "Consent IP address", "group": "consent"})
        )
    );
    let (status, body) = server.get("/v1/nowhere").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    // keys are stored hashed: the database file never holds a key
    let bytes = std::fs::read(db_path(&server)).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        !text.contains(KEY1) && !text.contains(KEY2),
        "an API key is stored in clear"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn accounts_never_see_each_other() {
    let server = Server::local("8s", "1s");
    let rx = receiver().await;
    let mine = server
        .active_scenario(&webhook_scenario(&rx.url("/h")))
        .await;
    let as2 = |method: &'static str, path: String| {
        let server = &server;
        async move {
            let body = json!({});
            server
                .request(
                    method,
                    &path,
                    Some(KEY2),
                    (method == "PUT").then_some(&body),
                )
                .await
        }
    };
    for (method, path) in [
        ("GET", format!("/v1/scenarios/{mine}")),
        ("PUT", format!("/v1/scenarios/{mine}")),
        ("POST", format!("/v1/scenarios/{mine}/activate")),
        ("POST", format!("/v1/scenarios/{mine}/archive")),
        ("POST", format!("/v1/scenarios/{mine}/duplicate")),
        ("GET", format!("/v1/scenarios/{mine}/stats")),
        ("GET", format!("/v1/scenarios/{mine}/steps/hook/stats")),
        ("GET", format!("/v1/scenarios/{mine}/steps/hook/deliveries")),
    ] {
        let (status, body) = as2(method, path.clone()).await;
        // PUT with an invalid body may be refused before the lookup; never 2xx, never the resource
        assert!(
            status == 404 || (method == "PUT" && status == 400),
            "{method} {path}: {status} {body}"
        );
        assert!(
            !body.to_string().contains("to the CRM"),
            "{method} {path} leaked the scenario"
        );
    }
    let (_, list) = server
        .request("GET", "/v1/scenarios", Some(KEY2), None)
        .await;
    assert_eq!(list, json!({"items": [], "nextCursor": null}));
    // account 2's event for the same contact id enrolls nobody in account 1's scenario
    let (status, body) = server
        .request("POST", "/v1/events", Some(KEY2), Some(&json!({"id": "e1", "type": "group_added", "contact": contact(1), "context": {"groupId": 7}})))
        .await;
    assert_eq!((status, &body["enrollments"]), (202, &json!([])));
    // and the same event id in account 1 is a different event
    let body = server
        .event("e1", "group_added", contact(1), json!({"groupId": 7}))
        .await;
    assert_eq!(body["enrollments"].as_array().unwrap().len(), 1);
    rx.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(rx.received()[0].json()["idClient"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_draft_active_archived_and_duplicate() {
    let server = Server::local("8s", "1s");
    let rx = receiver().await;
    let def = webhook_scenario(&rx.url("/v1"));
    let (status, created) = server.post("/v1/scenarios", &def).await;
    assert_eq!(status, 201);
    assert_eq!(created["status"], "draft");
    for key in ["id", "createdAt", "updatedAt"] {
        assert!(created[key].is_string(), "{key}");
    }
    let id = created["id"].as_str().unwrap().to_string();
    // a draft enrolls nobody
    let ev = server
        .event("e0", "group_added", contact(1), json!({"groupId": 7}))
        .await;
    assert_eq!(ev["enrollments"], json!([]));
    // a draft can be edited; the resource comes back as submitted
    let mut edited = def.clone();
    edited["name"] = json!("renamed");
    edited["steps"][0]["url"] = json!(rx.url("/v2"));
    let (status, body) = server
        .request(
            "PUT",
            &format!("/v1/scenarios/{id}"),
            Some(KEY1),
            Some(&edited),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["name"].as_str(), body["steps"][0]["url"].as_str()),
        (Some("renamed"), Some(rx.url("/v2").as_str()))
    );
    let (_, read) = server.get(&format!("/v1/scenarios/{id}")).await;
    for key in ["name", "trigger", "start", "steps", "allowReentry"] {
        assert_eq!(read[key], body[key], "{key}");
    }

    let (status, body) = server
        .request(
            "POST",
            &format!("/v1/scenarios/{id}/activate"),
            Some(KEY1),
            None,
        )
        .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("active")));
    let (status, body) = server
        .request(
            "PUT",
            &format!("/v1/scenarios/{id}"),
            Some(KEY1),
            Some(&edited),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("invalid_state"))
    );
    let (status, _) = server
        .request(
            "POST",
            &format!("/v1/scenarios/{id}/activate"),
            Some(KEY1),
            None,
        )
        .await;
    assert_eq!(status, 409);
    server
        .event("e1", "group_added", contact(1), json!({"groupId": 7}))
        .await;
    rx.wait_for(1, Duration::from_secs(10)).await;

    let (status, body) = server
        .request(
            "POST",
            &format!("/v1/scenarios/{id}/archive"),
            Some(KEY1),
            None,
        )
        .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("archived")));
    let ev = server
        .event("e2", "group_added", contact(2), json!({"groupId": 7}))
        .await;
    assert_eq!(
        ev["enrollments"],
        json!([]),
        "an archived scenario enrolled a contact"
    );
    for action in ["archive", "activate"] {
        let (status, _) = server
            .request(
                "POST",
                &format!("/v1/scenarios/{id}/{action}"),
                Some(KEY1),
                None,
            )
            .await;
        assert_eq!(status, 409, "{action} on archived");
    }
    // statistics stay readable
    let stats = server.step_stats(&id, "hook").await;
    assert_eq!(stats["passes"], 1);

    let (status, copy) = server
        .request(
            "POST",
            &format!("/v1/scenarios/{id}/duplicate"),
            Some(KEY1),
            None,
        )
        .await;
    assert_eq!((status, copy["status"].as_str()), (201, Some("draft")));
    assert_ne!(copy["id"], json!(id));
    assert_eq!(
        (copy["name"].clone(), copy["steps"].clone()),
        (json!("renamed"), read["steps"].clone())
    );
    let copy_id = copy["id"].as_str().unwrap();
    server
        .request(
            "POST",
            &format!("/v1/scenarios/{copy_id}/activate"),
            Some(KEY1),
            None,
        )
        .await;
    let ev = server
        .event("e3", "group_added", contact(3), json!({"groupId": 7}))
        .await;
    assert_eq!(ev["enrollments"][0]["scenarioId"], json!(copy_id));

    // list: newest first, pages of ?limit=
    let (_, page) = server.get("/v1/scenarios?limit=1").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["id"], json!(copy_id));
    let cursor = page["nextCursor"].as_str().unwrap();
    let (_, next) = server
        .get(&format!("/v1/scenarios?limit=1&cursor={cursor}"))
        .await;
    assert_eq!(next["items"][0]["id"], json!(id));
    assert_eq!(next["nextCursor"], Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn archived_scenarios_stop_contacts_but_keep_retrying() {
    let server = Server::local("30s", "1s");
    let rx = receiver().await;
    rx.set_status(500);
    let after = receiver().await;
    let id = server
        .active_scenario(&json!({
            "name": "archive me", "trigger": {"type": "group_added"}, "start": "hook",
            "steps": [{"id": "hook", "type": "send_webhook", "url": rx.url("/h"), "next": "pause"},
                      {"id": "pause", "type": "wait", "duration": "PT2S", "next": "after"},
                      {"id": "after", "type": "send_webhook", "url": after.url("/after"), "next": null}]
        }))
        .await;
    server
        .event("e1", "group_added", contact(1), json!({}))
        .await;
    server.wait_stats(&id, "pause", |s| s["passes"] == 1).await;
    server
        .request(
            "POST",
            &format!("/v1/scenarios/{id}/archive"),
            Some(KEY1),
            None,
        )
        .await;
    rx.set_status(200);
    server.wait_stats(&id, "hook", |s| s["accepted"] == 1).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        after.count(),
        0,
        "a contact advanced inside an archived scenario"
    );
    assert_eq!(server.step_stats(&id, "after").await["passes"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn test_button_sends_a_sample_and_shows_the_answer() {
    let server = Server::local("8s", "1s");
    let rx = receiver().await;
    let (status, answer) = server
        .post(
            "/v1/webhooks/test",
            &json!({"url": rx.url("/t"), "headers": {"X-Token": "t0k"}}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (
            answer["accepted"].as_bool(),
            answer["status"].as_u64(),
            &answer["error"]
        ),
        (Some(true), Some(200), &Value::Null)
    );
    assert!(answer["durationMs"].is_u64());
    let got = rx.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("x-token"), Some("t0k"));
    let body = got[0].json();
    assert!(body["id"].as_str().unwrap().starts_with("test_evt_"));
    assert_eq!(body["event"], "automation.webhook.send");
    assert_eq!(body["idClient"], 1);
    assert_eq!(
        body["data"],
        json!({"type": "member", "id": 54321, "email": "john.doe@example.org", "firstname": "John", "lastname": "Doe"})
    );

    rx.set_status(404);
    let (_, answer) = server
        .post("/v1/webhooks/test", &json!({"url": rx.url("/t")}))
        .await;
    assert_eq!(
        (answer["accepted"].as_bool(), answer["status"].as_u64()),
        (Some(false), Some(404))
    );
    assert!(answer["error"].as_str().unwrap().contains("404"));

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (_, answer) = server
        .post(
            "/v1/webhooks/test",
            &json!({"url": format!("http://127.0.0.1:{closed}/")}),
        )
        .await;
    assert_eq!(
        (answer["accepted"].as_bool(), &answer["status"]),
        (Some(false), &Value::Null)
    );
    assert!(!answer["error"].as_str().unwrap().is_empty());

    let (status, body) = server
        .post(
            "/v1/webhooks/test",
            &json!({"url": rx.url("/t"), "headers": {"Bad Header": "x"}}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("headers.Bad Header"))
    );
    let (status, body) = server
        .post("/v1/webhooks/test", &json!({"url": "not a url"}))
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("url"))
    );
}

/// At least 30 bad requests, each answered 4xx with a message (naming the field where one is
/// at fault), and nothing stored.
#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_and_stores_nothing() {
    let server = Server::local("8s", "1s");
    let rx = receiver().await;
    let good = webhook_scenario(&rx.url("/h"));
    let patched = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        v
    };
    let scenario_cases: Vec<(Value, &str)> = vec![
        (patched(&|v| v["name"] = json!("")), "name"),
        (patched(&|v| v["name"] = json!(42)), "name"),
        (
            patched(&|v| {
                v.as_object_mut().unwrap().remove("trigger");
            }),
            "trigger",
        ),
        (
            patched(&|v| v["trigger"] = json!({"type": "nope"})),
            "trigger.type",
        ),
        (
            patched(&|v| v["trigger"] = json!({"type": "date_reached", "field": "firstname"})),
            "trigger.field",
        ),
        (
            patched(&|v| v["trigger"] = json!({"type": "group_added", "formId": 1})),
            "trigger.formId",
        ),
        (patched(&|v| v["start"] = json!("missing")), "start"),
        (patched(&|v| v["steps"] = json!([])), "steps"),
        (
            patched(&|v| v["steps"][0]["type"] = json!("send_sms")),
            "steps[0].type",
        ),
        (
            patched(&|v| v["steps"][0]["url"] = json!("crm.example.com/hook")),
            "steps[0].url",
        ),
        (
            patched(&|v| v["steps"][0]["url"] = json!("ftp://crm.example.com/")),
            "steps[0].url",
        ),
        (
            patched(&|v| {
                v["steps"][0]["url"] = json!(format!("https://e.com/{}", "a".repeat(2050)))
            }),
            "steps[0].url",
        ),
        (
            patched(&|v| v["steps"][0]["fields"] = json!(["shoeSize"])),
            "steps[0].fields[0]",
        ),
        (
            patched(&|v| v["steps"][0]["fields"] = json!(["email", "email"])),
            "steps[0].fields[1]",
        ),
        (
            patched(&|v| v["steps"][0]["additional"] = json!({"x": "{{nickname}}"})),
            "steps[0].additional.x",
        ),
        (
            patched(&|v| v["steps"][0]["additional"] = json!({"email": "dup"})),
            "steps[0].additional.email",
        ),
        (
            patched(&|v| v["steps"][0]["additional"] = json!({"type": "x"})),
            "steps[0].additional.type",
        ),
        (
            patched(&|v| v["steps"][0]["additional"] = json!({"n": 5})),
            "steps[0].additional.n",
        ),
        (
            patched(&|v| v["steps"][0]["headers"] = json!({"X Bad": "1"})),
            "steps[0].headers.X Bad",
        ),
        (
            patched(&|v| v["steps"][0]["headers"] = json!({"Host": "evil"})),
            "steps[0].headers.Host",
        ),
        (
            patched(&|v| v["steps"][0]["headers"] = json!({"webhook-id": "1"})),
            "steps[0].headers.webhook-id",
        ),
        (
            patched(&|v| v["steps"][0]["headers"] = json!({"X-A": "a\nb"})),
            "steps[0].headers.X-A",
        ),
        (
            patched(&|v| v["steps"][0]["headers"] = json!({"X-A": "a".repeat(1025)})),
            "steps[0].headers.X-A",
        ),
        (
            patched(&|v| v["steps"][0]["next"] = json!("ghost")),
            "steps[0].next",
        ),
        (
            patched(&|v| v["steps"][0]["next"] = json!("hook")),
            "steps[0].next",
        ),
        (
            patched(
                &|v| v["steps"] = json!([{"id": "a", "type": "wait", "duration": "PT1H", "next": null}, {"id": "a", "type": "wait", "duration": "PT1H", "next": null}]),
            ),
            "steps[1].id",
        ),
        (
            patched(&|v| {
                v["steps"] =
                    json!([{"id": "hook", "type": "wait", "duration": "an hour", "next": null}])
            }),
            "steps[0].duration",
        ),
        (
            patched(
                &|v| v["steps"] = json!([{"id": "hook", "type": "condition", "rule": {"field": "email", "op": "like", "value": "x"}, "yes": null, "no": null}]),
            ),
            "steps[0].rule.op",
        ),
        (
            patched(
                &|v| v["steps"] = json!([{"id": "hook", "type": "condition", "rule": {"field": "shoe", "op": "equals", "value": "x"}, "yes": null, "no": null}]),
            ),
            "steps[0].rule.field",
        ),
    ];
    let mut count = 0;
    for (body, field) in &scenario_cases {
        let (status, answer) = server.post("/v1/scenarios", body).await;
        assert_eq!(status, 400, "{field}: {answer}");
        assert_eq!(answer["error"]["field"].as_str(), Some(*field), "{answer}");
        assert!(!answer["error"]["message"].as_str().unwrap().is_empty());
        count += 1;
    }
    let event_cases: Vec<(Value, &str)> = vec![
        (json!({"type": "group_added", "contact": contact(1)}), "id"),
        (
            json!({"id": "", "type": "group_added", "contact": contact(1)}),
            "id",
        ),
        (
            json!({"id": "e", "type": "birthday", "contact": contact(1)}),
            "type",
        ),
        (json!({"id": "e", "type": "group_added"}), "contact"),
        (
            json!({"id": "e", "type": "group_added", "contact": {"email": "a@b.c"}}),
            "contact.id",
        ),
        (
            json!({"id": "e", "type": "group_added", "contact": {"id": "x", "email": "a@b.c"}}),
            "contact.id",
        ),
        (
            json!({"id": "e", "type": "group_added", "contact": {"id": 1}}),
            "contact.email",
        ),
        (
            json!({"id": "e", "type": "group_added", "contact": {"id": 1, "email": "a@b.c", "birthDate": "soon"}}),
            "contact.birthDate",
        ),
        (
            json!({"id": "e", "type": "group_added", "contact": contact(1), "context": [1]}),
            "context",
        ),
        (
            json!({"id": "e", "type": "group_added", "contact": contact(1), "occurredAt": "yesterday"}),
            "occurredAt",
        ),
    ];
    for (body, field) in &event_cases {
        let (status, answer) = server.post("/v1/events", body).await;
        assert_eq!(status, 400, "{field}: {answer}");
        assert_eq!(answer["error"]["field"].as_str(), Some(*field), "{answer}");
        count += 1;
    }
    // transport-level refusals
    let http = reqwest::Client::new();
    let raw = |ct: &'static str, body: Vec<u8>| {
        http.post(format!("{}/v1/scenarios", server.base))
            .bearer_auth(KEY1)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let resp = raw("text/plain", b"{}".to_vec()).await.unwrap();
    assert_eq!(resp.status(), 415);
    let resp = raw("application/json", b"{not json".to_vec())
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["code"],
        "invalid_json"
    );
    let resp = raw("application/json", b"[1,2]".to_vec()).await.unwrap();
    assert_eq!(resp.status(), 400);
    let big = serde_json::to_vec(&json!({"name": "x".repeat(300 * 1024)})).unwrap();
    let resp = raw("application/json", big).await.unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["code"],
        "payload_too_large"
    );
    count += 4;
    // bad queries
    let (status, answer) = server.get("/v1/scenarios?limit=0").await;
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (400, Some("limit"))
    );
    let (status, answer) = server.get("/v1/scenarios?limit=101").await;
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (400, Some("limit"))
    );
    let (status, answer) = server.get("/v1/scenarios?cursor=garbage").await;
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (400, Some("cursor"))
    );
    count += 3;
    assert!(count >= 30, "{count} cases");

    // nothing was stored
    let (_, list) = server.get("/v1/scenarios").await;
    assert_eq!(list["items"], json!([]), "a refused scenario was stored");
    let id = server.active_scenario(&good).await;
    let (status, answer) = server
        .get(&format!(
            "/v1/scenarios/{id}/steps/hook/deliveries?status=lost"
        ))
        .await;
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (400, Some("status"))
    );
    // a refused event left no contact behind and no answer under its id
    let ok = server
        .event("e", "group_added", contact(1), json!({"groupId": 7}))
        .await;
    assert_eq!(
        ok["enrollments"].as_array().unwrap().len(),
        1,
        "a refused event was remembered under its id"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.wait_stats(&id, "hook", |s| s["passes"] == 1).await;
}
