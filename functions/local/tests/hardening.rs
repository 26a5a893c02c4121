//! Input hardening: path parameters answered in the API's error shape and
//! bounded, header values HTTP cannot carry, numbers in conditions that are not numbers.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn malformed_or_overlong_path_parameters_are_a_json_400_naming_them() {
    let server = Server::local("30s", "1s");
    for (path, field) in [
        ("/v1/scenarios/%FF".to_string(), None),
        (format!("/v1/scenarios/{}", "s".repeat(129)), Some("id")),
        (
            format!("/v1/scenarios/scn_1/steps/{}/stats", "x".repeat(200)),
            Some("step"),
        ),
        (
            format!("/v1/scenarios/{}/activate", "s".repeat(2_000)),
            Some("id"),
        ),
    ] {
        let method = if path.ends_with("activate") {
            "POST"
        } else {
            "GET"
        };
        let (status, body) = server.request(method, &path, Some(KEY1), None).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["code"], "invalid_path", "{path}: {body}");
        assert_eq!(body["error"]["field"].as_str(), field, "{path}: {body}");
    }
    // 128 characters is still a (well-formed, unknown) id
    let (status, body) = server
        .get(&format!("/v1/scenarios/{}", "s".repeat(128)))
        .await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn header_values_http_cannot_carry_are_refused() {
    let server = Server::local("30s", "1s");
    let rx = receiver().await;
    for value in ["café", "a\u{1}b", "a\u{7f}"] {
        let mut def = webhook_scenario(&rx.url("/h"));
        def["steps"][0]["headers"] = json!({"X-A": value});
        let (status, body) = server.post("/v1/scenarios", &def).await;
        assert_eq!(status, 400, "{value:?}: {body}");
        assert_eq!(body["error"]["field"], "steps[0].headers.X-A", "{body}");
        let (status, body) = server
            .post(
                "/v1/webhooks/test",
                &json!({"url": rx.url("/t"), "headers": {"X-A": value}}),
            )
            .await;
        assert_eq!(status, 400, "{value:?}: {body}");
    }
    let (_, list) = server.get("/v1/scenarios").await;
    assert_eq!(list["items"], json!([]), "nothing stored");
    assert_eq!(rx.count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_contact_named_nan_and_a_zip_code_with_a_zero_compare_as_text() {
    let server = Server::local("30s", "1s");
    let rx = receiver().await;
    let id = server
        .active_scenario(&json!({
            "name": "text", "trigger": {"type": "group_added"}, "start": "nan",
            "steps": [
                {"id": "nan", "type": "condition", "rule": {"field": "lastname", "op": "equals", "value": "Nan"},
                 "yes": "zip", "no": null},
                {"id": "zip", "type": "condition", "rule": {"field": "postalCode", "op": "equals", "value": "1234"},
                 "yes": null, "no": "hook"},
                {"id": "hook", "type": "send_webhook", "url": rx.url("/h"), "fields": ["lastname", "postalCode"], "next": null}
            ]
        }))
        .await;
    let mut c = contact(1);
    c["lastname"] = json!("Nan");
    c["postalCode"] = json!("01234");
    server.event("nan-1", "group_added", c, json!({})).await;
    let got = rx.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].json()["data"]["postalCode"], "01234");
    let nan = server.step_stats(&id, "nan").await;
    assert_eq!(nan["passes"], 1);
}
