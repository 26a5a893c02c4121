//! The Test button: send a sample payload now and show the answer.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::views::TestAnswer;
use super::{AppError, Hookline};
use crate::domain::Invalid;
use crate::domain::net::check_url;
use crate::domain::payload::{EVENT_NAME, Envelope, sample_data};
use crate::domain::scenario::check_headers;
use crate::domain::signing;
use crate::domain::time::rfc3339_seconds;
use crate::ports::OutboundRequest;

/// `POST /v1/webhooks/test`: where to send the sample payload.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct TestRequest {
    /// An absolute `http` or `https` URL.
    #[schema(
        max_length = 2048,
        pattern = r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s/?#@]+([/?#].*)?$"
    )]
    pub url: String,
    /// Headers to send, with the same rules as a step's.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Sign the request with this secret (`whsec_` + base64), as a signed step would.
    #[serde(default)]
    #[schema(pattern = r"^whsec_[A-Za-z0-9+/]+={0,2}$", max_length = 200)]
    pub secret: Option<String>,
}

impl Hookline {
    /// The Test button: sends the sample payload now and answers what the receiver said.
    pub async fn test_webhook(&self, account: i64, body: Value) -> Result<TestAnswer, AppError> {
        let request: TestRequest = crate::domain::from_json_value(body, "")?;
        let sender = &self.ports.sender;
        let url = check_url(&request.url, "url", sender.allows_private_targets())?;
        let mut headers = check_headers(&request.headers, "headers")?;
        if let Some(secret) = &request.secret
            && (secret.len() > 200 || signing::key_of(secret).is_none())
        {
            return Err(Invalid::new(
                "invalid_secret",
                "secret",
                "must be `whsec_` followed by base64 (as GET …/secret shows it)",
            )
            .into());
        }
        sender
            .check_target(&url)
            .await
            .map_err(|why| Invalid::new("forbidden_target", "url", why))?;
        let id = self.ports.ids.new_id("test_evt");
        let now = self.ports.clock.now();
        let body = Envelope {
            id: &id,
            event: EVENT_NAME,
            timestamp: rfc3339_seconds(now),
            id_client: account,
            scenario: None,
            data: sample_data(),
        }
        .to_json();
        if let Some(secret) = &request.secret {
            headers.extend(signing::headers(&[secret], &id, now, body.as_bytes()));
        }
        let outcome = sender
            .send(&OutboundRequest {
                url: url.as_str(),
                headers: &headers,
                body: &body,
            })
            .await;
        Ok(TestAnswer {
            accepted: outcome.accepted(),
            status: outcome.status,
            error: outcome.error,
            duration_ms: outcome.duration_ms,
        })
    }
}
