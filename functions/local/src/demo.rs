//! `hookline demo`: a throw-away database, a local receiver, and one contact walked through a
//! scenario over the real HTTP API — each call printed as the curl a newcomer could type.

use std::time::Duration;

use anyhow::Context;
use hookline_core::domain::retry::RetryPolicy;
use hookline_local::receiver::{Receiver, ReceiverOptions};
use serde_json::{Value, json};

use crate::serve;

struct Api {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl Api {
    async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut shown = format!("$ curl -X {method} {url} -H 'Authorization: Bearer $KEY'");
        if let Some(b) = body {
            shown.push_str(&format!(" -H 'Content-Type: application/json' -d '{b}'"));
        }
        println!("{shown}");
        let mut req = self
            .http
            .request(method.parse()?, &url)
            .bearer_auth(&self.key);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let value: Value = resp.json().await.unwrap_or(Value::Null);
        println!("→ {status}\n{}\n", serde_json::to_string_pretty(&value)?);
        anyhow::ensure!(status.is_success(), "{method} {path} answered {status}");
        Ok(value)
    }
}

pub async fn run(stay: bool) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let receiver = Receiver::start(
        "127.0.0.1:0",
        ReceiverOptions {
            fail_first: 1,
            print: false,
            ..ReceiverOptions::default()
        },
    )
    .await?;
    let key = "hk_demo_key_for_account_3";
    let config = serve::Config {
        listen: "127.0.0.1:0".into(),
        db: dir.path().join("demo.db"),
        api_keys: vec![(3, key.into())],
        // the demo's receiver is on this machine, so private targets are allowed here
        allow_private_targets: true,
        policy: RetryPolicy::parse("1m", "2s").map_err(anyhow::Error::msg)?,
        workers: 8,
        destination_concurrency: hookline_core::domain::destination::DEFAULT_CONCURRENCY,
        clock_start: None,
    };
    let server = serve::start(config).await?;
    println!(
        "Hookline demo: API on http://{}, a receiver on {} that answers 500 once, then 200.",
        server.addr,
        receiver.url("/")
    );
    println!(
        "Retry schedule shortened for the demo: window 1m, delay 2s (the defaults are 12h and 10s,1m,5m,…).\n"
    );
    let api = Api {
        base: format!("http://{}", server.addr),
        key: key.into(),
        http: reqwest::Client::new(),
    };

    let scenario = json!({
        "name": "Welcome to CRM",
        "trigger": {"type": "form_subscribed", "formId": 12},
        "start": "has-consent",
        "steps": [
            {"id": "has-consent", "type": "condition",
             "rule": {"field": "consentType", "op": "equals", "value": "express"},
             "yes": "to-crm", "no": null},
            {"id": "to-crm", "type": "send_webhook", "url": receiver.url("/hooks/new-lead"),
             "fields": ["email", "firstname", "lastname", "consentType", "customFields.plan"],
             "additional": {"full_name": "{{firstname}} {{lastname}}", "source": "newsletter"},
             "headers": {"X-Api-Key": "abc123"},
             "next": "pause"},
            {"id": "pause", "type": "wait", "duration": "PT2H", "next": null}
        ]
    });
    println!("1. Create a scenario (a draft), then activate it:");
    let created = api.call("POST", "/v1/scenarios", Some(&scenario)).await?;
    let id = created["id"].as_str().context("scenario id")?.to_string();
    api.call("POST", &format!("/v1/scenarios/{id}/activate"), None)
        .await?;

    println!("2. The platform reports that a contact subscribed through form 12:");
    let event = json!({
        "id": "evt-demo-1", "type": "form_subscribed", "occurredAt": "2026-11-26T12:00:00Z",
        "contact": {"id": 54321, "email": "john.doe@example.org", "firstname": "John", "lastname": "Doe",
                    "customFields": {"plan": "gold"}, "consent": {"type": "express"}},
        "context": {"formId": 12}
    });
    api.call("POST", "/v1/events", Some(&event)).await?;

    println!("3. The receiver answers the first attempt 500; Hookline retries 2 s later:");
    let got = receiver.wait_for(2, Duration::from_secs(20)).await;
    for (i, r) in got.iter().enumerate() {
        println!(
            "   receiver got attempt {} at {} → answered {}",
            i + 1,
            hookline_core::domain::time::rfc3339_millis(r.at),
            r.answered
        );
    }
    let first = got.first().context("no webhook arrived")?;
    println!(
        "   body: {}\n   headers: X-Api-Key: {}, User-Agent: {}\n",
        first.body,
        first.header("x-api-key").unwrap_or("-"),
        first.header("user-agent").unwrap_or("-")
    );
    anyhow::ensure!(
        got.len() >= 2 && got[0].body == got[1].body,
        "the retry did not resend the same bytes"
    );
    println!(
        "   Each attempt is signed (Standard Webhooks); the receiver checks it with the step's secret:"
    );
    let secret = api
        .call(
            "GET",
            &format!("/v1/scenarios/{id}/steps/to-crm/secret"),
            None,
        )
        .await?;
    let secret = secret["secret"].as_str().context("the step's secret")?;
    for r in &got {
        let header = |n: &str| r.header(n).map(str::to_string);
        let verdict = hookline_core::domain::signing::verify(
            secret,
            header,
            r.body.as_bytes(),
            jiff::Timestamp::now(),
        );
        println!(
            "   webhook-id {} · webhook-timestamp {} · signature {}",
            r.header("webhook-id").unwrap_or("-"),
            r.header("webhook-timestamp").unwrap_or("-"),
            match verdict {
                Ok(()) => "valid".to_string(),
                Err(e) => format!("INVALID ({e})"),
            }
        );
    }
    println!();

    println!("4. The step's statistics and deliveries:");
    crate::eventually(Duration::from_secs(5), || async {
        let stats = api
            .call_quiet(&format!("/v1/scenarios/{id}/steps/to-crm/stats"))
            .await;
        stats.is_ok_and(|s| s["accepted"] == 1)
    })
    .await;
    api.call("GET", &format!("/v1/scenarios/{id}/stats"), None)
        .await?;
    api.call(
        "GET",
        &format!("/v1/scenarios/{id}/steps/to-crm/deliveries"),
        None,
    )
    .await?;

    // a time-based trigger: a birthday at a minute just past, so it fires now (an occurrence
    // less than a day old fires at once; a later one would wait for its minute)
    let just_past = jiff::Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_mins(1))?
        .to_zoned(jiff::tz::TimeZone::UTC);
    let at = just_past.strftime("%H:%M").to_string();
    let birthday = json!({
        "name": "Happy birthday",
        "trigger": {"type": "date_reached", "field": "birthDate", "yearly": true, "time": at,
                    "timezone": "UTC"},
        "start": "wish",
        "steps": [{"id": "wish", "type": "send_webhook", "url": receiver.url("/hooks/birthday"),
                   "fields": ["email", "firstname", "birthDate"], "next": null}]
    });
    println!("5. A time-based trigger: every year on the contact's birthday at {at} UTC.");
    let created = api.call("POST", "/v1/scenarios", Some(&birthday)).await?;
    let birthday_id = created["id"].as_str().context("scenario id")?.to_string();
    api.call(
        "POST",
        &format!("/v1/scenarios/{birthday_id}/activate"),
        None,
    )
    .await?;
    let born = format!("1990-{}", just_past.strftime("%m-%d"));
    println!(
        "   A contact born on {born} arrives (today's {at} is a minute ago: it fires at once):"
    );
    let event = json!({
        "id": "evt-demo-2", "type": "contact_updated",
        "contact": {"id": 777, "email": "ann@example.org", "firstname": "Ann", "birthDate": born}
    });
    api.call("POST", "/v1/events", Some(&event)).await?;
    let got = receiver
        .wait_for(got.len() + 1, Duration::from_secs(10))
        .await;
    let wish = got
        .iter()
        .find(|r| r.path == "/hooks/birthday")
        .context("the birthday webhook did not arrive")?;
    println!(
        "   receiver got: {}
",
        wish.body
    );
    println!(
        "Done: one contact reached, the webhook accepted on its second attempt, and counted; \
         and a birthday fired from the stored date.\n"
    );
    println!("The console: http://{}/", server.addr);
    println!("API key (paste it there): {}", api.key);
    println!("Metrics (Prometheus): http://{}/metrics", server.addr);
    if stay {
        println!("\nServing until Ctrl-C.");
        serve::wait_for_signal().await;
    } else {
        println!("\n(run `hookline demo --stay` to keep it serving until Ctrl-C)");
    }
    server.stop().await
}

impl Api {
    async fn call_quiet(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .send()
            .await?
            .json()
            .await?)
    }
}
