//! Outbound safety: without --allow-private-targets, no webhook may target a private address.

mod common;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn private_targets_are_refused_at_validation_and_by_the_test_button() {
    let server = Server::start(&[]); // the default: private targets refused
    let rx = receiver().await;
    let port = rx.addr.port();
    for url in [
        format!("http://127.0.0.1:{port}/h"),
        format!("http://[::1]:{port}/h"),
        format!("http://[::ffff:127.0.0.1]:{port}/h"),
        format!("http://localhost:{port}/h"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.0.0.8/h".to_string(),
        "http://192.168.1.1/h".to_string(),
        "http://100.64.0.1/h".to_string(),
        "http://[fd00:ec2::254]/h".to_string(),
        "http://0.0.0.0/h".to_string(),
        // IPv4 inside other IPv6 forms: 6to4 (the metadata address), Teredo, SIIT
        "http://[2002:a9fe:a9fe::]/h".to_string(),
        format!("http://[2002:7f00:1::1]:{port}/h"),
        "http://[2001:0:a9fe:a9fe::1]/h".to_string(),
        "http://[::ffff:0:a9fe:a9fe]/h".to_string(),
    ] {
        let (status, body) = server.post("/v1/scenarios", &webhook_scenario(&url)).await;
        assert_eq!(status, 400, "{url}: {body}");
        assert_eq!(body["error"]["field"], "steps[0].url", "{url}");
        assert_eq!(body["error"]["code"], "forbidden_target", "{url}");
        let (status, body) = server.post("/v1/webhooks/test", &json!({"url": url})).await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (400, Some("url")),
            "{url}: {body}"
        );
    }
    assert_eq!(rx.count(), 0, "a private target was reached");
    let (_, list) = server.get("/v1/scenarios").await;
    assert_eq!(list["items"], json!([]));
    // a public name that does not resolve here is accepted (checked again at every attempt)
    let (status, _) = server
        .post(
            "/v1/scenarios",
            &webhook_scenario("https://crm.example.com/hooks/new-lead"),
        )
        .await;
    assert_eq!(status, 201);
}
