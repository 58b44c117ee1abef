//! What can go wrong in the engine, in terms the API maps one-to-one onto S2 error codes.

use crate::storage::StorageError;

/// A position in a stream: the next seq_num and the last timestamp, for tails; a record's
/// own seq_num and timestamp otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    pub seq_num: u64,
    pub timestamp: u64,
}

/// Why an append's condition did not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConditionFailed {
    /// The stream's current fencing token.
    FencingTokenMismatch(String),
    /// The seq_num the batch's first record would have got.
    SeqNumMismatch(u64),
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    #[error("basin not found: {0}")]
    BasinNotFound(String),
    #[error("stream not found: {0}")]
    StreamNotFound(String),
    #[error("access token not found: {0}")]
    AccessTokenNotFound(String),
    #[error("basin is being deleted: {0}")]
    BasinDeletionPending(String),
    #[error("stream is being deleted: {0}")]
    StreamDeletionPending(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    Invalid(String),
    #[error("append condition failed: {0:?}")]
    ConditionFailed(ConditionFailed),
    /// The read starts beyond what is written (or at the tail and cannot wait).
    #[error("range not satisfiable")]
    Unwritten(Position),
    /// Concurrent writers kept winning; nothing was written. Retryable.
    #[error("{0}")]
    TransactionConflict(String),
    /// Object storage failed; a write may or may not have taken effect.
    #[error("storage: {0}")]
    Storage(String),
    /// An earlier append in the same session failed, so this one was not applied.
    #[error("an earlier append in this session failed")]
    SessionAborted,
    /// An object the index referred to is gone (retention or trimming removed it after
    /// this node read the index).
    #[error("object missing: {0}")]
    ObjectMissing(String),
    /// Stored data failed validation.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// The request's `s2-encryption-key` does not fit the stream's cipher (missing, not
    /// base64, not 32 bytes).
    #[error("{0}")]
    EncryptionKey(String),
    /// A record did not open with the request's key: a wrong key (or altered data).
    #[error("{0}")]
    DecryptionFailed(String),
    /// This node is shutting down.
    #[error("server is draining")]
    Draining,
}

impl From<StorageError> for EngineError {
    fn from(e: StorageError) -> Self {
        EngineError::Storage(e.to_string())
    }
}

pub type EngineResult<T> = Result<T, EngineError>;
