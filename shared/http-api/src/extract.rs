//! Extractors that answer in the API's error shape: the caller's account from its key, and
//! a JSON body (415 when not JSON, 413 over 256 KiB, 400 naming the position when malformed).

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde_json::Value;

use crate::{ApiError, ApiState, MAX_BODY};

/// The account of the request's `Authorization: Bearer <key>`.
pub struct Account(pub i64);

impl FromRequestParts<ApiState> for Account {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let key = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .unwrap_or_default();
        Ok(Account(state.engine.authenticate(key).await?))
    }
}

/// A JSON request body, as a value the use case parses (at most `LIMIT` bytes).
pub struct JsonBody<const LIMIT: usize = MAX_BODY>(pub Value);

impl<const LIMIT: usize> FromRequest<ApiState> for JsonBody<LIMIT> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &ApiState) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let mime = content_type.split(';').next().unwrap_or_default().trim();
        if mime != "application/json" && !mime.ends_with("+json") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send JSON with Content-Type: application/json",
            ));
        }
        let too_large = || {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("a request body is at most {} KiB", LIMIT / 1024),
            )
        };
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if let Some(n) = declared
            && n > LIMIT
        {
            // A body a little too large is read and dropped first, so that the client (still
            // sending it) gets the 413 instead of a connection reset; a huge one is not.
            if n <= LIMIT * 4 {
                let _ = axum::body::to_bytes(Body::new(req.into_body()), LIMIT * 4).await;
            }
            return Err(too_large());
        }
        let bytes = axum::body::to_bytes(Body::new(req.into_body()), LIMIT)
            .await
            .map_err(|_| too_large())?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("the body is not valid JSON: {e}"),
            )
        })?;
        if !value.is_object() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                "the body must be a JSON object",
            ));
        }
        Ok(JsonBody(value))
    }
}

/// `?a=b&c=d`, leniently: a malformed query never fails the request by itself.
pub fn query(raw: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The longest id or step id a path may carry (Hookline's own are far shorter; a longer one
/// can name nothing, and must not reach a store).
pub const MAX_PATH_ID: usize = 128;

/// Path parameters, refused in the API's error shape: a malformed one (`%FF`) or one longer
/// than [`MAX_PATH_ID`] is a 400 naming it, never axum's plain-text rejection.
pub struct Ids<T>(pub T);

impl<T> FromRequestParts<ApiState> for Ids<T>
where
    T: serde::de::DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let invalid = |field: Option<&str>, message: String| {
            let mut e = ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", message);
            e.field = field.map(str::to_string);
            e
        };
        let raw = axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| {
                invalid(
                    None,
                    format!("a path parameter is malformed: {}", e.body_text()),
                )
            })?;
        for (name, value) in &raw {
            if value.is_empty() || value.chars().count() > MAX_PATH_ID {
                return Err(invalid(
                    Some(name),
                    format!("must be 1 to {MAX_PATH_ID} characters"),
                ));
            }
        }
        let axum::extract::Path(value) = axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map_err(|e| {
                invalid(
                    None,
                    format!("a path parameter is malformed: {}", e.body_text()),
                )
            })?;
        Ok(Ids(value))
    }
}
