//! Errors as `{"error": {"code", "message", "field"}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hookline_core::AppError;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// snake_case, e.g. `invalid_url`.
    pub code: String,
    /// What is wrong, for a person.
    pub message: String,
    /// JSON path of the field at fault, when one field is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.to_string(),
            message: message.into(),
            field: None,
        }
    }
}

impl From<AppError> for ApiError {
    fn from(err: AppError) -> Self {
        match err {
            AppError::Invalid(inv) => ApiError {
                status: StatusCode::BAD_REQUEST,
                code: inv.code.to_string(),
                message: inv.message,
                field: inv.field,
            },
            AppError::Unauthorized => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", err.to_string())
            }
            AppError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, "not_found", m),
            AppError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "invalid_state", m),
            AppError::Unexpected(e) => {
                // details go to the log, never to the caller
                tracing::error!(error = format!("{e:#}"), "request failed");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "Hookline could not complete this request just now; try again",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                field: self.field,
            },
        };
        (self.status, Json(body)).into_response()
    }
}
