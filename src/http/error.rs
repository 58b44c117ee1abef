//! The errors of authenticating and authorizing a request, in no surface's wire format:
//! the S2 surface renders them as S2 error codes, the plate surface as its own codes.

use crate::engine::EngineError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// Tokens are on and the request has no `Authorization` header (401).
    #[error("{0}")]
    MissingToken(String),
    /// The header is malformed, or names an unknown, revoked or expired token (401).
    #[error("{0}")]
    InvalidToken(String),
    /// The token does not allow the operation on the resource (403).
    #[error("{0}")]
    PermissionDenied(String),
    /// A name the token's stream prefix makes invalid (too long with the prefix).
    #[error("{0}")]
    InvalidName(String),
    /// Looking the token up failed.
    #[error(transparent)]
    Engine(EngineError),
}
