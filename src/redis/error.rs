//! Errors of the Redis command layer: Redis's own error replies, word for word, and the
//! service's errors (authentication, a missing plate, storage) that a front door shows in
//! its own way.

use crate::{engine::EngineError, http::AuthError};

#[derive(Debug, Clone, PartialEq)]
pub enum RedisError {
    /// A Redis error reply, its full text: `ERR …`, `NOGROUP …`, `BUSYGROUP …`, `WRONGTYPE …`.
    Reply(String),
    /// A command name outside the stream commands.
    Unsupported(String),
    /// The caller has no (valid) token, or the token does not allow the operation.
    MissingAuthorization(String),
    InvalidAuthorization(String),
    PermissionDenied(String),
    /// The plate (basin) does not exist.
    PlateNotFound(String),
    /// The store failed or kept racing; retrying may succeed.
    Unavailable(String),
}

impl RedisError {
    /// `ERR <text>`.
    pub fn err(text: impl std::fmt::Display) -> Self {
        Self::Reply(format!("ERR {text}"))
    }

    pub fn syntax() -> Self {
        Self::err("syntax error")
    }

    /// Redis's text for a wrong number of arguments, `name` in lower case as Redis shows it.
    pub fn arity(name: &str) -> Self {
        Self::err(format!(
            "wrong number of arguments for '{}' command",
            name.to_ascii_lowercase()
        ))
    }

    pub fn not_an_integer() -> Self {
        Self::err("value is not an integer or out of range")
    }

    pub fn invalid_id() -> Self {
        Self::err("Invalid stream ID specified as stream command argument")
    }

    /// The first word of a Redis error reply (`ERR`, `NOGROUP`, …), the code shown over HTTP.
    pub fn code(&self) -> &str {
        match self {
            Self::Reply(text) => text.split(' ').next().unwrap_or("ERR"),
            Self::Unsupported(_) => "unsupported_command",
            Self::MissingAuthorization(_) => "missing_authorization",
            Self::InvalidAuthorization(_) => "invalid_authorization",
            Self::PermissionDenied(_) => "permission_denied",
            Self::PlateNotFound(_) => "not_found",
            Self::Unavailable(_) => "unavailable",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Self::Reply(m)
            | Self::Unsupported(m)
            | Self::MissingAuthorization(m)
            | Self::InvalidAuthorization(m)
            | Self::PermissionDenied(m)
            | Self::PlateNotFound(m)
            | Self::Unavailable(m) => m,
        }
    }
}

impl From<EngineError> for RedisError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::BasinNotFound(b) => Self::PlateNotFound(format!("no such plate: {b}")),
            EngineError::Invalid(m) => Self::err(m),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

pub type RedisResult<T> = Result<T, RedisError>;

impl From<AuthError> for RedisError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::MissingToken(m) => Self::MissingAuthorization(m),
            AuthError::InvalidToken(m) => Self::InvalidAuthorization(m),
            AuthError::PermissionDenied(m) => Self::PermissionDenied(m),
            AuthError::InvalidName(m) => Self::err(m),
            AuthError::Engine(e) => e.into(),
        }
    }
}
