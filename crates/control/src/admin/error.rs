//! The one error type of the Admin API, and how it renders itself as APISIX does.

use http::StatusCode;
use portico_store::StoreError;
use serde_json::{json, Value};

/// Everything an Admin API call can fail with. Each variant knows its status and APISIX body.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// 400 `{"error_msg": ...}`: the request is wrong (validation, ids, references).
    #[error("{0}")]
    Invalid(String),
    /// 400 `{"error_msg":"invalid request body: ...","req_body":"..."}`.
    #[error("invalid request body: {message}")]
    BadJson { message: String, raw: String },
    /// 400 with a plain-text body (APISIX answers a few list errors that way).
    #[error("{0}")]
    PlainInvalid(String),
    /// 401 `{"error_msg":"failed to check token","description": ...}`.
    #[error("failed to check token: {0}")]
    Unauthorized(&'static str),
    /// 403 `{"error_msg": ...}`: the caller's token does not reach this object.
    #[error("{0}")]
    Forbidden(String),
    /// 404 `{"message":"Key not found"}`.
    #[error("Key not found")]
    KeyNotFound,
    /// 404 `{"error_msg": ...}`.
    #[error("{0}")]
    NotFound(String),
    /// 404 with an empty body: no Admin route at this path.
    #[error("no such path")]
    NoRoute,
    /// 405 ``{"error_msg":"not supported `POST` method for consumer"}``.
    #[error("not supported `{method}` method for {kind}")]
    MethodNotSupported { method: String, kind: &'static str },
    /// 503 `{"error_msg": ...}`: the store failed or a write kept conflicting.
    #[error("{0}")]
    Unavailable(String),
}

impl AdminError {
    pub fn invalid(msg: impl Into<String>) -> Self {
        AdminError::Invalid(msg.into())
    }

    /// The status code APISIX answers this error with.
    pub fn status(&self) -> StatusCode {
        match self {
            AdminError::Invalid(_) | AdminError::BadJson { .. } | AdminError::PlainInvalid(_) => {
                StatusCode::BAD_REQUEST
            }
            AdminError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AdminError::Forbidden(_) => StatusCode::FORBIDDEN,
            AdminError::KeyNotFound | AdminError::NotFound(_) | AdminError::NoRoute => {
                StatusCode::NOT_FOUND
            }
            AdminError::MethodNotSupported { .. } => StatusCode::METHOD_NOT_ALLOWED,
            AdminError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The response body: JSON for every error but the plain-text ones and [`AdminError::NoRoute`].
    pub fn body(&self) -> Option<Value> {
        Some(match self {
            AdminError::BadJson { message, raw } => {
                json!({"error_msg": format!("invalid request body: {message}"), "req_body": raw})
            }
            AdminError::Unauthorized(description) => {
                json!({"error_msg": "failed to check token", "description": description})
            }
            AdminError::KeyNotFound => json!({"message": "Key not found"}),
            AdminError::PlainInvalid(_) | AdminError::NoRoute => return None,
            other => json!({"error_msg": other.to_string()}),
        })
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        AdminError::Unavailable(e.to_string())
    }
}

pub type AdminResult<T> = Result<T, AdminError>;
