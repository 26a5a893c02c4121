//! A webhook receiver: answers every POST with a chosen status and keeps what it got.
//! `hookline receive` prints what it gets; tests and the demo read it back and change its
//! answer while it runs.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use hookline_core::domain::signing::{self, VerifyError};
use jiff::Timestamp;
use tokio::sync::Notify;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Timestamp,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The status it was answered with.
    pub answered: u16,
    /// With a secret: whether the Standard Webhooks signature verified (and why not).
    pub signature: Option<Result<(), VerifyError>>,
}

/// The most requests of `received` that arrived within any 1-second window (a pace kept
/// or not, as the receiver saw it).
pub fn busiest_second(received: &[Received]) -> usize {
    let mut at: Vec<i64> = received.iter().map(|r| r.at.as_millisecond()).collect();
    at.sort_unstable();
    let mut most = 0;
    let mut from = 0;
    for to in 0..at.len() {
        while at[to] - at[from] >= 1_000 {
            from += 1;
        }
        most = most.max(to - from + 1);
    }
    most
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Default)]
struct Inner {
    received: Mutex<Vec<Received>>,
    count: AtomicUsize,
    status: AtomicU16,
    fail_first: AtomicUsize,
    flaky_first: usize,
    delay_ms: AtomicU64,
    keep: bool,
    print: bool,
    secret: Option<String>,
    arrived: Notify,
    /// A receiver that takes so many requests a second (a token bucket as deep as one
    /// second's worth) and answers `429` beyond.
    limit: Mutex<Option<Bucket>>,
}

/// A token bucket: `rate` requests a second, at most `rate` at once.
struct Bucket {
    rate: f64,
    tokens: f64,
    last: std::time::Instant,
    /// Send `Retry-After: 1` with each `429`.
    retry_after: bool,
}

impl Bucket {
    /// Takes a token: `None` when there is one, else the `429`'s `Retry-After` (if sent).
    fn take(&mut self) -> Result<(), bool> {
        let now = std::time::Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.rate.max(1.0));
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(self.retry_after)
        }
    }
}

#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

#[derive(Debug, Clone)]
pub struct ReceiverOptions {
    pub status: u16,
    /// Answer 500 to the first N requests.
    pub fail_first: usize,
    /// Answer 500 to every other request among the first N (a flaky receiver that never
    /// fails many times in a row, so its destination never turns `failing`).
    pub flaky_first: usize,
    /// Print each request to stdout.
    pub print: bool,
    /// Keep each request in memory (off for benchmarks).
    pub keep: bool,
    /// Verify each request's signature with this secret (`whsec_…`); a request that does not
    /// verify is answered 401, as a verifying receiver would.
    pub secret: Option<String>,
}

impl Default for ReceiverOptions {
    fn default() -> Self {
        ReceiverOptions {
            status: 200,
            fail_first: 0,
            flaky_first: 0,
            print: false,
            keep: true,
            secret: None,
        }
    }
}

async fn handle(
    State(inner): State<Arc<Inner>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let n = inner.count.fetch_add(1, Ordering::SeqCst);
    let limited = inner
        .limit
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_mut()
        .and_then(|b| b.take().err());
    let delay = inner.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let signature = inner.secret.as_deref().map(|secret| {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        signing::verify(secret, header, &body, Timestamp::now())
    });
    let status = if signature.as_ref().is_some_and(|v| v.is_err()) {
        401
    } else if n < inner.fail_first.load(Ordering::SeqCst) || (n < inner.flaky_first && n % 2 == 0) {
        500
    } else if limited.is_some() {
        429
    } else {
        inner.status.load(Ordering::SeqCst)
    };
    if inner.keep || inner.print {
        let received = Received {
            at: Timestamp::now(),
            path: uri.path().to_string(),
            headers: headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: String::from_utf8_lossy(&body).into_owned(),
            answered: status,
            signature,
        };
        if inner.print {
            print_request(n + 1, &received);
        }
        if inner.keep {
            inner
                .received
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(received);
        }
    }
    inner.arrived.notify_waiters();
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let text = if code.is_success() { "ok" } else { "not now" };
    if status == 429 && limited == Some(true) {
        return (code, [("retry-after", "1")], text).into_response();
    }
    (code, text).into_response()
}

fn print_request(n: usize, r: &Received) {
    let body = serde_json::from_str::<serde_json::Value>(&r.body)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| r.body.clone());
    let shown: Vec<String> = r
        .headers
        .iter()
        .filter(|(k, _)| {
            matches!(k.as_str(), "content-type" | "user-agent")
                || k.starts_with("x-")
                || k.starts_with("webhook-")
        })
        .map(|(k, v)| format!("  {k}: {v}"))
        .collect();
    let verdict = match &r.signature {
        None => String::new(),
        Some(Ok(())) => "  signature: valid\n".to_string(),
        Some(Err(why)) => format!("  signature: INVALID ({why})\n"),
    };
    println!(
        "#{n} POST {} at {} → answered {}\n{}\n{verdict}{body}\n",
        r.path,
        hookline_core::domain::time::rfc3339_millis(r.at),
        r.answered,
        shown.join("\n")
    );
}

impl Receiver {
    /// Starts a receiver on `listen` (`127.0.0.1:0` picks a free port).
    pub async fn start(listen: &str, options: ReceiverOptions) -> anyhow::Result<Receiver> {
        let inner = Arc::new(Inner {
            status: AtomicU16::new(options.status),
            fail_first: AtomicUsize::new(options.fail_first),
            flaky_first: options.flaky_first,
            keep: options.keep,
            print: options.print,
            secret: options.secret,
            ..Inner::default()
        });
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "receiver stopped");
            }
        });
        Ok(Receiver { addr, inner })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The status to answer from now on.
    pub fn set_status(&self, status: u16) {
        self.inner.status.store(status, Ordering::SeqCst);
    }

    /// Takes at most `rate` requests a second from now on (a token bucket one second deep),
    /// answering `429` beyond — with `Retry-After: 1` when `retry_after`. `None`: no limit.
    pub fn set_rate_limit(&self, rate: Option<f64>, retry_after: bool) {
        *self.inner.limit.lock().unwrap_or_else(|e| e.into_inner()) = rate.map(|rate| Bucket {
            rate,
            tokens: rate.max(1.0),
            last: std::time::Instant::now(),
            retry_after,
        });
    }

    /// A pause before each answer (a slow receiver).
    pub fn set_delay(&self, delay: Duration) {
        self.inner
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn count(&self) -> usize {
        self.inner.count.load(Ordering::SeqCst)
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner
            .received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Takes what was kept so far (a long benchmark keeps memory flat this way).
    pub fn drain(&self) -> Vec<Received> {
        std::mem::take(
            &mut *self
                .inner
                .received
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        )
    }

    /// Waits until at least `n` requests arrived (or `timeout` passed); returns what arrived.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.inner.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if self.count() >= n || tokio::time::Instant::now() >= deadline {
                return self.received();
            }
            let _ = tokio::time::timeout_at(deadline, arrived).await;
        }
    }
}

/// What the reference verifiers nobody here wrote — the PyPI packages `standardwebhooks` and
/// `svix` — say of a request, verified with `secret` by a receiver whose clock is
/// `late_seconds` ahead: `{"standardwebhooks": "ok" | "refused: …", "svix": …}`. For tests:
/// runs `scripts/verify_webhooks.py` with the interpreter named by `HOOKLINE_TEST_PYTHON`
/// (scripts/test.sh makes that venv).
pub fn reference_verdicts(
    secret: &str,
    r: &Received,
    body: &str,
    late_seconds: u64,
) -> serde_json::Value {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let python = std::env::var("HOOKLINE_TEST_PYTHON").expect(
        "HOOKLINE_TEST_PYTHON is not set: run scripts/test.sh, which makes .venv-webhooks \
         with the reference verifiers (standardwebhooks, svix)",
    );
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/verify_webhooks.py"
    );
    let headers: serde_json::Map<String, serde_json::Value> = r
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    let input = serde_json::json!({"secret": secret, "body": body, "headers": headers,
                                   "late_seconds": late_seconds});
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the reference verifiers' python runs");
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.to_string().as_bytes())
            .expect("the verifiers read their input");
    }
    let out = child.wait_with_output().expect("the verifiers answer");
    assert!(out.status.success(), "scripts/verify_webhooks.py failed");
    serde_json::from_slice(&out.stdout).expect("the verifiers print JSON")
}
