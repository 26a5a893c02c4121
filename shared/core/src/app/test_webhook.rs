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
use crate::domain::time::rfc3339_seconds;
use crate::ports::OutboundRequest;

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct TestRequest {
    /// An absolute `http` or `https` URL.
    #[schema(
        max_length = 2048,
        pattern = r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s/?#@]+([/?#].*)?$"
    )]
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

impl Hookline {
    pub async fn test_webhook(&self, account: i64, body: Value) -> Result<TestAnswer, AppError> {
        let request: TestRequest = crate::domain::from_json_value(body, "")?;
        let sender = &self.ports.sender;
        let url = check_url(&request.url, "url", sender.allows_private_targets())?;
        let headers = check_headers(&request.headers, "headers")?;
        sender
            .check_target(&url)
            .await
            .map_err(|why| Invalid::new("forbidden_target", "url", why))?;
        let id = self.ports.ids.new_id("test_evt");
        let body = Envelope {
            id: &id,
            event: EVENT_NAME,
            timestamp: rfc3339_seconds(self.ports.clock.now()),
            id_client: account,
            scenario: None,
            data: sample_data(),
        }
        .to_json();
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
