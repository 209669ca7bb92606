//! [`ApiError`]: every way a dashboard or `/api/` request can fail, rendered as
//! `{"error": {"code": ..., "message": ...}}` with the matching HTTP status.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use exai_actors::ports::StoreError;
use serde_json::json;

/// A failed dashboard request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Host or Origin not allowed (403).
    #[error("{0}")]
    Forbidden(String),
    /// The admin token (or, without one, the auth token) is missing or wrong (401).
    #[error(
        "token required (server.admin_token, or server.auth_token when no admin token is set): \
         Authorization: Bearer <token>, or open /dashboard?token=<token>"
    )]
    Unauthorized,
    /// Malformed query string or body (400).
    #[error("{0}")]
    BadRequest(String),
    /// The store failed (503) or the row does not exist (404).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Shutdown has begun (503).
    #[error("server is shutting down")]
    ShuttingDown,
    /// Too many event streams (503 with Retry-After).
    #[error("too many dashboard streams are open")]
    TooManyStreams,
    /// The cluster store did not answer (503).
    #[error("cluster store unavailable: {0}")]
    ClusterUnavailable(String),
}

impl ApiError {
    fn code(&self) -> &'static str {
        match self {
            ApiError::Forbidden(_) => "FORBIDDEN",
            ApiError::Unauthorized => "UNAUTHORIZED",
            ApiError::BadRequest(_) => "BAD_REQUEST",
            ApiError::Store(StoreError::NotFound(_)) => "NOT_FOUND",
            ApiError::Store(_) => "STORE_UNAVAILABLE",
            ApiError::ShuttingDown => "SERVICE_UNAVAILABLE",
            ApiError::TooManyStreams => "OVER_CAPACITY",
            ApiError::ClusterUnavailable(_) => "CLUSTER_UNAVAILABLE",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Store(StoreError::NotFound(_)) => StatusCode::NOT_FOUND,
            ApiError::Store(_)
            | ApiError::ShuttingDown
            | ApiError::TooManyStreams
            | ApiError::ClusterUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut b = HttpResponse::build(self.status_code());
        match self {
            ApiError::Unauthorized => {
                b.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            ApiError::TooManyStreams => {
                b.insert_header((header::RETRY_AFTER, "5"));
            }
            _ => {}
        }
        b.json(json!({ "error": { "code": self.code(), "message": self.to_string() } }))
    }
}
