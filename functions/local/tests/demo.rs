//! `hookline demo` ends with the console's address and a key that opens it; with `--stay` it
//! keeps serving them until it is told to stop.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[tokio::test]
async fn the_demo_stays_with_its_console_and_key() {
    hookline_sender::install_tls_provider();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hookline"))
        .args(["demo", "--stay"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut console, mut key) = (None, None);
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(url) = line.strip_prefix("The console: ") {
            console = Some(url.to_string());
        }
        if let Some(k) = line.strip_prefix("API key (paste it there): ") {
            key = Some(k.to_string());
        }
        if line.starts_with("Serving until Ctrl-C") {
            break;
        }
    }
    let (console, key) = (console.expect("no console line"), key.expect("no key line"));
    std::thread::spawn(move || for _ in lines {});
    let http = reqwest::Client::new();
    // still serving after the story ended
    tokio::time::sleep(Duration::from_millis(300)).await;
    let page = http.get(&console).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Hookline console"));
    let list: serde_json::Value = http
        .get(format!("{console}v1/scenarios"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "the demo's two scenarios: {names:?}");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}
