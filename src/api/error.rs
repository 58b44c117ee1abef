//! S2 errors on the wire: every non-2xx is JSON `{code, message}` with the status its
//! code implies, except 412 (append condition) and 416 (read beyond the tail), which have
//! bodies of their own, and 413 (a body over `--max-body-bytes`), which S2 has no code
//! for: it is `invalid` (the request can only succeed changed) with the status that says
//! how it is invalid. The SDK treats a code whose status differs as unknown, and 413 as
//! not retryable, which is what it is.

use axum::response::{IntoResponse, Response};
use s2_api::v1::{
    error::{ErrorCode, ErrorInfo, ErrorResponse, StandardError},
    stream::{AppendConditionFailed, StreamPosition, TailResponse, s2s::TerminalMessage},
};

use crate::{
    engine::{ConditionFailed, EngineError, InputError, Position},
    http::{AuthError, body::BodyError, budget::Refused},
};

#[derive(Debug, Clone)]
pub enum ApiError {
    Standard {
        code: ErrorCode,
        message: String,
    },
    ConditionFailed(ConditionFailed),
    Unwritten(Position),
    /// A body over the node's limit: 413, code `invalid`.
    TooLarge(String),
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Standard {
            code,
            message: message.into(),
        }
    }

    pub fn bad_header(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadHeader, message)
    }

    pub fn bad_path(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadPath, message)
    }

    pub fn bad_query(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadQuery, message)
    }

    pub fn bad_json(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadJson, message)
    }

    pub fn bad_proto(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadProto, message)
    }

    pub fn bad_frame(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadFrame, message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Invalid, message)
    }

    pub fn not_implemented(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotImplemented, message)
    }

    /// An append refused at admission (the node's in-flight append bytes stayed spent for
    /// `--append-admission-timeout`): 429 `rate_limited`, which S2 defines as retryable
    /// and free of side effects, so the SDK retries it even under its `NoSideEffects`
    /// append policy; nothing of the request was read or applied. (503 `unavailable` is
    /// retryable too, but promises no such thing.)
    pub fn admission_refused(refused: Refused) -> Self {
        Self::new(
            ErrorCode::RateLimited,
            format!(
                "this node's in-flight append bytes stayed at their limit for {:?} \
                 (--append-inflight-bytes); nothing was applied, retry",
                refused.waited
            ),
        )
    }

    /// A body that could not be read whole: too large (413), too slow (408
    /// `request_timeout`), or broken (`otherwise`, the format's own bad-input code).
    pub fn body(e: BodyError, otherwise: fn(String) -> Self) -> Self {
        match e {
            BodyError::TooLarge { .. } => Self::TooLarge(format!("{e} (--max-body-bytes)")),
            BodyError::TimedOut { .. } => Self::new(
                ErrorCode::RequestTimeout,
                format!("{e} (--body-read-timeout)"),
            ),
            BodyError::Failed(_) => otherwise(e.to_string()),
        }
    }

    pub fn to_error_response(&self) -> ErrorResponse {
        match self {
            Self::Standard { code, message } => ErrorResponse::Standard(StandardError {
                status: code.status(),
                info: ErrorInfo {
                    code: (*code).into(),
                    message: message.clone(),
                },
            }),
            Self::ConditionFailed(ConditionFailed::FencingTokenMismatch(token)) => {
                ErrorResponse::AppendConditionFailed(AppendConditionFailed::FencingTokenMismatch(
                    token.parse().expect("stored fencing tokens are valid"),
                ))
            }
            Self::ConditionFailed(ConditionFailed::SeqNumMismatch(seq)) => {
                ErrorResponse::AppendConditionFailed(AppendConditionFailed::SeqNumMismatch(*seq))
            }
            Self::TooLarge(message) => ErrorResponse::Standard(StandardError {
                status: http::StatusCode::PAYLOAD_TOO_LARGE,
                info: ErrorInfo {
                    code: ErrorCode::Invalid.into(),
                    message: message.clone(),
                },
            }),
            Self::Unwritten(tail) => ErrorResponse::Unwritten(TailResponse {
                tail: StreamPosition {
                    seq_num: tail.seq_num,
                    timestamp: tail.timestamp,
                },
            }),
        }
    }

    /// Status and JSON body, as an S2S terminal frame or SSE `error` event carries them.
    pub fn to_parts(&self) -> (http::StatusCode, String) {
        self.to_error_response().to_parts()
    }

    pub fn to_terminal(&self) -> TerminalMessage {
        let (status, body) = self.to_parts();
        TerminalMessage {
            status: status.as_u16(),
            body,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.to_error_response().into_response()
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let message = e.to_string();
        match e {
            EngineError::BasinNotFound(_) => Self::new(ErrorCode::BasinNotFound, message),
            EngineError::StreamNotFound(_) => Self::new(ErrorCode::StreamNotFound, message),
            EngineError::AccessTokenNotFound(_) => {
                Self::new(ErrorCode::AccessTokenNotFound, message)
            }
            EngineError::BasinDeletionPending(_) => {
                Self::new(ErrorCode::BasinDeletionPending, message)
            }
            EngineError::StreamDeletionPending(_) => {
                Self::new(ErrorCode::StreamDeletionPending, message)
            }
            EngineError::AlreadyExists(_) => Self::new(ErrorCode::ResourceAlreadyExists, message),
            EngineError::Invalid(_) => Self::new(ErrorCode::Invalid, message),
            EngineError::ConditionFailed(c) => Self::ConditionFailed(c),
            EngineError::Unwritten(tail) => Self::Unwritten(tail),
            EngineError::TransactionConflict(_) => {
                Self::new(ErrorCode::TransactionConflict, message)
            }
            EngineError::Storage(_) | EngineError::Corrupt(_) | EngineError::ObjectMissing(_) => {
                Self::new(ErrorCode::Storage, message)
            }
            EngineError::SessionAborted => Self::new(ErrorCode::Other, message),
            EngineError::EncryptionKey(_) => Self::new(ErrorCode::BadHeader, message),
            EngineError::DecryptionFailed(_) => Self::new(ErrorCode::DecryptionFailed, message),
            EngineError::Draining => Self::new(ErrorCode::ServerDraining, message),
        }
    }
}

impl From<InputError> for ApiError {
    fn from(e: InputError) -> Self {
        match e {
            InputError::Malformed(m) => Self::bad_proto(m),
            InputError::Invalid(m) => Self::invalid(m),
        }
    }
}

impl From<s2_common::ValidationError> for ApiError {
    fn from(e: s2_common::ValidationError) -> Self {
        Self::invalid(e.to_string())
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::MissingToken(m) | AuthError::InvalidToken(m) => {
                Self::new(ErrorCode::Authn, m)
            }
            AuthError::PermissionDenied(m) => Self::new(ErrorCode::PermissionDenied, m),
            AuthError::InvalidName(m) => Self::invalid(m),
            AuthError::Engine(e) => e.into(),
        }
    }
}
