//! The webhook sender's port: one outbound attempt, and the outbound safety check.

use async_trait::async_trait;

use crate::domain::delivery::AttemptOutcome;

/// An outbound webhook request.
#[derive(Debug, Clone)]
pub struct OutboundRequest<'a> {
    /// The target URL.
    pub url: &'a str,
    /// The headers, signature and the step's own included.
    pub headers: &'a [(String, String)],
    /// The JSON body, as frozen.
    pub body: &'a str,
}

/// Sends webhooks (`hookline-sender`, over reqwest).
#[async_trait]
pub trait WebhookSender: Send + Sync {
    /// One attempt: POST, no redirects followed, outbound safety checked on the address
    /// connected to. Never fails: every problem is an outcome with an error.
    async fn send(&self, request: &OutboundRequest<'_>) -> AttemptOutcome;
    /// Resolves the URL's host and refuses it if any address is not public (unless private
    /// targets are allowed). `Err` carries the reason. Unresolvable names pass.
    async fn check_target(&self, url: &url::Url) -> Result<(), String>;
    /// Whether private targets are allowed (`--allow-private-targets`).
    fn allows_private_targets(&self) -> bool;
}
