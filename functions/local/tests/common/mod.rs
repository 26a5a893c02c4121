//! Test harness: the real `hookline` binary on 127.0.0.1:0 with a temporary database, and
//! real receivers whose answers a test can change.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub use hookline_local::receiver::{Receiver, ReceiverOptions};
use serde_json::{Value, json};

pub const KEY1: &str = "hk_test_account_one_0001";
pub const KEY2: &str = "hk_test_account_two_0002";

pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub dir: tempfile::TempDir,
    args: Vec<String>,
    http: reqwest::Client,
    starts: usize,
}

impl Server {
    /// Starts `hookline serve` with two accounts (1 and 2) and `extra` flags.
    pub fn start(extra: &[&str]) -> Server {
        hookline_sender::install_tls_provider();
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("hookline.db");
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--db".into(),
            db.display().to_string(),
            "--api-key".into(),
            format!("1:{KEY1}"),
            "--api-key".into(),
            format!("2:{KEY2}"),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut server = Server {
            child: None,
            base: String::new(),
            dir,
            args,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            starts: 0,
        };
        server.spawn();
        server
    }

    /// A server that delivers to 127.0.0.1 (the test receivers), with a short retry window.
    pub fn local(window: &str, delays: &str) -> Server {
        Server::start(&[
            "--allow-private-targets",
            "--retry-window",
            window,
            "--retry-delays",
            delays,
        ])
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let log =
            std::fs::File::create(self.dir.path().join(format!("server-{}.log", self.starts)))
                .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_hookline"))
            .args(&self.args)
            .env("HOOKLINE_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().expect("hookline printed nothing").unwrap();
        let addr = first
            .strip_prefix("hookline listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {first}"));
        self.base = addr.to_string();
        std::thread::spawn(move || for _ in lines {});
        self.child = Some(child);
    }

    pub fn log(&self) -> String {
        (1..=self.starts)
            .map(|i| {
                std::fs::read_to_string(self.dir.path().join(format!("server-{i}.log")))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `kill -9`: no chance to finish anything.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Sets (or replaces) a flag's value for the next start.
    pub fn set_arg(&mut self, flag: &str, value: &str) {
        match self.args.iter().position(|a| a == flag) {
            Some(i) => self.args[i + 1] = value.to_string(),
            None => self.args.extend([flag.to_string(), value.to_string()]),
        }
    }

    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "kill it first");
        self.spawn();
    }

    /// SIGTERM; returns the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        for _ in 0..300 {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        child.kill().unwrap();
        panic!("hookline did not stop within 30 s of SIGTERM");
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.request("GET", path, Some(KEY1), None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.request("POST", path, Some(KEY1), Some(body)).await
    }

    /// Creates and activates a scenario for account 1; returns its id.
    pub async fn active_scenario(&self, def: &Value) -> String {
        let (status, body) = self.post("/v1/scenarios", def).await;
        assert_eq!(status, 201, "{body}");
        let id = body["id"].as_str().unwrap().to_string();
        let (status, body) = self
            .request(
                "POST",
                &format!("/v1/scenarios/{id}/activate"),
                Some(KEY1),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        id
    }

    pub async fn event(&self, event_id: &str, kind: &str, contact: Value, context: Value) -> Value {
        let (status, body) = self
            .post(
                "/v1/events",
                &json!({"id": event_id, "type": kind, "contact": contact, "context": context}),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        body
    }

    pub async fn step_stats(&self, scenario: &str, step: &str) -> Value {
        let (status, body) = self
            .get(&format!("/v1/scenarios/{scenario}/steps/{step}/stats"))
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn deliveries(&self, scenario: &str, step: &str) -> Vec<Value> {
        let (status, body) = self
            .get(&format!(
                "/v1/scenarios/{scenario}/steps/{step}/deliveries?limit=100"
            ))
            .await;
        assert_eq!(status, 200, "{body}");
        body["items"].as_array().unwrap().clone()
    }

    /// Polls a step's stats until `check` holds (or 30 s pass).
    pub async fn wait_stats(
        &self,
        scenario: &str,
        step: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        for _ in 0..300 {
            let stats = self.step_stats(scenario, step).await;
            if check(&stats) {
                return stats;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "stats never matched: {}\n{}",
            self.step_stats(scenario, step).await,
            self.log()
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub async fn receiver() -> Receiver {
    Receiver::start("127.0.0.1:0", ReceiverOptions::default())
        .await
        .unwrap()
}

pub fn contact(id: i64) -> Value {
    json!({"id": id, "email": format!("c{id}@example.org"), "firstname": "John", "lastname": "Doe",
           "consent": {"type": "express"}, "customFields": {"plan": "gold"},
           "groups": [{"id": 7, "name": "Newsletter"}]})
}

/// A scenario: trigger `group_added` (group 7), then one webhook step `hook` to `url`.
pub fn webhook_scenario(url: &str) -> Value {
    json!({
        "name": "to the CRM",
        "trigger": {"type": "group_added", "groupId": 7},
        "start": "hook",
        "steps": [{"id": "hook", "type": "send_webhook", "url": url,
                   "fields": ["email", "firstname"], "next": null}]
    })
}

pub fn db_path(server: &Server) -> PathBuf {
    server.dir.path().join("hookline.db")
}
