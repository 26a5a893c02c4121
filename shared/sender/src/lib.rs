//! The [`WebhookSender`] port over reqwest.
//!
//! Outbound safety (SPEC §6): every name is resolved by [`GuardedResolver`], which drops
//! loopback, private, link-local, CGNAT, multicast and unspecified addresses (mapped IPv6 forms
//! included), so the connection can only go to an address that passed; literal IP hosts are
//! checked before the request. No proxy is used and redirects are never followed.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hookline_core::domain::delivery::AttemptOutcome;
use hookline_core::domain::net::blocked_reason;
use hookline_core::ports::{OutboundRequest, WebhookSender};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// At most this much of a response body is read.
pub const MAX_READ: usize = 64 * 1024;
/// This much of it is kept on the attempt.
pub const SNIPPET: usize = 1024;
pub const USER_AGENT: &str = concat!("Hookline/", env!("CARGO_PKG_VERSION"));

type LookupFuture = Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>>;
/// Name → addresses. The system resolver in production; a test may inject one to play a
/// DNS-rebinding attack that a real resolver here cannot show.
pub type Lookup = Arc<dyn Fn(String) -> LookupFuture + Send + Sync>;

pub fn system_lookup() -> Lookup {
    Arc::new(|host: String| {
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    })
}

/// A resolver that only ever hands reqwest addresses that are allowed.
pub struct GuardedResolver {
    lookup: Lookup,
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let lookup = self.lookup.clone();
        let allow_private = self.allow_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let ips = lookup(host.clone()).await?;
            let mut allowed = Vec::new();
            let mut refused = None;
            for ip in ips {
                match blocked_reason(ip) {
                    Some(why) if !allow_private => refused = Some((ip, why)),
                    _ => allowed.push(SocketAddr::new(ip, 0)),
                }
            }
            if allowed.is_empty() {
                let message = match refused {
                    Some((ip, why)) => format!("blocked: {host} resolves to {ip}, a {why} address"),
                    None => format!("{host} has no address"),
                };
                return Err(Box::new(Blocked(message)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[derive(Debug)]
struct Blocked(String);

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Blocked {}

/// Makes rustls on ring the process's TLS provider, once; every `reqwest::Client` is built
/// after it (reqwest's `rustls-no-provider` takes that provider and panics without one). The
/// roots are unchanged: the system's, through rustls-platform-verifier.
pub fn install_tls_provider() {
    // an Err is a provider already installed
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub struct ReqwestSender {
    /// Built on first use: loading the system's root certificates costs milliseconds that a
    /// function which never sends a webhook (most API calls) should not pay at cold start.
    client: std::sync::OnceLock<Result<reqwest::Client, String>>,
    lookup: Lookup,
    allow_private: bool,
}

impl ReqwestSender {
    pub fn new(allow_private: bool) -> Self {
        Self::with_lookup(allow_private, system_lookup())
    }

    pub fn with_lookup(allow_private: bool, lookup: Lookup) -> Self {
        ReqwestSender {
            client: std::sync::OnceLock::new(),
            lookup,
            allow_private,
        }
    }

    fn client(&self) -> Result<&reqwest::Client, String> {
        self.client
            .get_or_init(|| {
                let resolver = GuardedResolver {
                    lookup: self.lookup.clone(),
                    allow_private: self.allow_private,
                };
                install_tls_provider();
                reqwest::Client::builder()
                    .user_agent(USER_AGENT)
                    .redirect(reqwest::redirect::Policy::none())
                    .connect_timeout(CONNECT_TIMEOUT)
                    .timeout(REQUEST_TIMEOUT)
                    .no_proxy()
                    .pool_max_idle_per_host(64)
                    .dns_resolver(Arc::new(resolver))
                    .build()
                    .map_err(|e| format!("the HTTP client could not be built: {e}"))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    fn literal_ip_refused(&self, url: &url::Url) -> Option<String> {
        if self.allow_private {
            return None;
        }
        let ip: IpAddr = match url.host()? {
            url::Host::Ipv4(ip) => ip.into(),
            url::Host::Ipv6(ip) => ip.into(),
            url::Host::Domain(_) => return None,
        };
        blocked_reason(ip).map(|why| format!("blocked: {ip} is a {why} address"))
    }
}

fn describe(err: &reqwest::Error) -> String {
    // The innermost cause says most (connection refused, a blocked address, a TLS problem).
    let mut source: Option<&dyn std::error::Error> = Some(err);
    let mut deepest = err.to_string();
    while let Some(e) = source {
        deepest = e.to_string();
        source = e.source();
    }
    if err.is_timeout() {
        format!("timed out ({deepest})")
    } else if err.is_connect() {
        format!("could not connect: {deepest}")
    } else {
        deepest
    }
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let text = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = jiff::fmt::rfc2822::parse(text).ok()?.timestamp();
    let secs = when.duration_since(jiff::Timestamp::now()).as_secs();
    Some(Duration::from_secs(secs.max(0) as u64))
}

fn truncate_utf8(bytes: &[u8], max: usize) -> String {
    let slice = &bytes[..bytes.len().min(max)];
    match std::str::from_utf8(slice) {
        Ok(s) => s.to_string(),
        Err(e) if e.error_len().is_none() => {
            String::from_utf8_lossy(&slice[..e.valid_up_to()]).into_owned()
        }
        Err(_) => String::from_utf8_lossy(slice).into_owned(),
    }
}

#[async_trait]
impl WebhookSender for ReqwestSender {
    async fn send(&self, request: &OutboundRequest<'_>) -> AttemptOutcome {
        let started = Instant::now();
        let failed = |error: String, started: Instant| AttemptOutcome {
            status: None,
            error: Some(error),
            duration_ms: started.elapsed().as_millis() as u64,
            response_snippet: None,
            retry_after: None,
        };
        let url = match url::Url::parse(request.url) {
            Ok(u) => u,
            Err(e) => return failed(format!("invalid URL: {e}"), started),
        };
        if let Some(why) = self.literal_ip_refused(&url) {
            return failed(why, started);
        }
        let client = match self.client() {
            Ok(c) => c,
            Err(e) => return failed(e, started),
        };
        let mut builder = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(request.body.to_string());
        for (name, value) in request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let mut response = match builder.send().await {
            Ok(r) => r,
            Err(e) => return failed(describe(&e), started),
        };
        let status = response.status();
        let wait = if status.as_u16() == 429 || status.as_u16() == 503 {
            retry_after(response.headers())
        } else {
            None
        };
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_string);
        let mut body = Vec::new();
        let mut read_error = None;
        while body.len() < MAX_READ {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    body.extend_from_slice(&chunk[..chunk.len().min(MAX_READ - body.len())])
                }
                Ok(None) => break,
                Err(e) => {
                    read_error = Some(describe(&e));
                    break;
                }
            }
        }
        let error = if status.is_success() {
            None
        } else if status.is_redirection() {
            Some(format!(
                "HTTP {status}: redirects are not followed{}",
                location.map(|l| format!(" (to {l})")).unwrap_or_default()
            ))
        } else {
            Some(format!("HTTP {status}"))
        };
        AttemptOutcome {
            status: Some(status.as_u16()),
            error: error.or(read_error.filter(|_| !status.is_success())),
            duration_ms: started.elapsed().as_millis() as u64,
            response_snippet: (!body.is_empty()).then(|| truncate_utf8(&body, SNIPPET)),
            retry_after: wait,
        }
    }

    async fn check_target(&self, url: &url::Url) -> Result<(), String> {
        if self.allow_private {
            return Ok(());
        }
        if let Some(why) = self.literal_ip_refused(url) {
            return Err(why);
        }
        let Some(url::Host::Domain(host)) = url.host() else {
            return Ok(());
        };
        let host = host.to_string();
        let lookup = (self.lookup)(host.clone());
        let Ok(Ok(ips)) = tokio::time::timeout(Duration::from_secs(3), lookup).await else {
            return Ok(()); // unresolvable now: checked again at every attempt
        };
        for ip in ips {
            if let Some(why) = blocked_reason(ip) {
                return Err(format!(
                    "{host} resolves to {ip}, a {why} address; webhooks may only reach public addresses"
                ));
            }
        }
        Ok(())
    }

    fn allows_private_targets(&self) -> bool {
        self.allow_private
    }
}

#[cfg(test)]
mod tests;
