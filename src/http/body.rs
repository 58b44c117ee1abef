//! Reading a unary request body whole, within the node's limits: at most
//! `--max-body-bytes` (after decompression) and within `--body-read-timeout` of starting
//! to read it, so that neither a huge body nor one trickled a byte at a time holds the
//! node. Every handler that takes a body reads it here; each surface renders a
//! [`BodyError`] in its own envelope (413 for too large, 408 for too slow).

use std::time::Duration;

use axum::body::{Body, Bytes};
use http::{HeaderMap, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::limits::Limits;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Over `--max-body-bytes`, by its `content-length` or as it arrived.
    TooLarge { limit: usize },
    /// Not all there within `--body-read-timeout`.
    TimedOut { after: Duration },
    /// The body failed on the way in (the client went away, or bad compression).
    Failed(String),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge { limit } => {
                write!(f, "request body over the limit of {limit} bytes")
            }
            Self::TimedOut { after } => {
                write!(f, "request body did not arrive within {after:?}")
            }
            Self::Failed(m) => write!(f, "failed to read the request body: {m}"),
        }
    }
}

/// The body's length as its `content-length` announces it (absent for chunked and for
/// decompressed bodies, whose decompression drops the header).
pub fn announced_len(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Refuses a body whose `content-length` is already over the limit, before any of it is
/// read.
pub fn check_announced(headers: &HeaderMap, limits: &Limits) -> Result<(), BodyError> {
    match announced_len(headers) {
        Some(n) if n > limits.max_body_bytes => Err(BodyError::TooLarge {
            limit: limits.max_body_bytes,
        }),
        _ => Ok(()),
    }
}

/// The whole body, within `limits`.
pub async fn read_body(body: Body, limits: &Limits) -> Result<Bytes, BodyError> {
    let limit = limits.max_body_bytes;
    let collect = Limited::new(body, limit).collect();
    match tokio::time::timeout(limits.body_read_timeout, collect).await {
        Err(_) => Err(BodyError::TimedOut {
            after: limits.body_read_timeout,
        }),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(BodyError::TooLarge { limit })
        }
        Ok(Err(e)) => Err(BodyError::Failed(e.to_string())),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// Reads and discards the body of a request that is refused before it was read, so that
/// an HTTP/1.1 client, which sends its whole body before it reads the answer, gets to see
/// the refusal: answering first and closing the connection meets most clients mid-upload
/// with a broken pipe instead. Only on HTTP/1.x (HTTP/2 answers a stream early and resets
/// it, and the client stops sending), within the body limits, and keeping nothing: what
/// it holds at a time is one read buffer.
pub async fn discard_for_http1(version: http::Version, body: Body, limits: &Limits) {
    if version > http::Version::HTTP_11 {
        return;
    }
    let mut body = Limited::new(body, limits.max_body_bytes);
    let drain = async { while let Some(Ok(_)) = body.frame().await {} };
    let _ = tokio::time::timeout(limits.body_read_timeout, drain).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, timeout: Duration) -> Limits {
        Limits {
            max_body_bytes: max,
            body_read_timeout: timeout,
            ..Limits::default()
        }
    }

    #[tokio::test]
    async fn bodies_within_the_limit_arrive_whole() {
        let l = limits(10, Duration::from_secs(1));
        assert_eq!(
            read_body(Body::from("0123456789"), &l).await.unwrap(),
            "0123456789"
        );
        assert_eq!(
            read_body(Body::from("0123456789!"), &l).await,
            Err(BodyError::TooLarge { limit: 10 })
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickled_body_times_out() {
        let l = limits(1000, Duration::from_secs(3));
        let trickle = futures::stream::unfold(0u8, |i| async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Some((
                Ok::<_, std::io::Error>(Bytes::from(vec![i])),
                i.wrapping_add(1),
            ))
        });
        assert_eq!(
            read_body(Body::from_stream(trickle), &l).await,
            Err(BodyError::TimedOut {
                after: Duration::from_secs(3)
            })
        );
    }

    #[test]
    fn announced_lengths_over_the_limit_are_refused_unread() {
        let l = limits(10, Duration::from_secs(1));
        let mut h = HeaderMap::new();
        assert!(check_announced(&h, &l).is_ok());
        h.insert(header::CONTENT_LENGTH, "10".parse().unwrap());
        assert!(check_announced(&h, &l).is_ok());
        h.insert(header::CONTENT_LENGTH, "11".parse().unwrap());
        assert_eq!(
            check_announced(&h, &l),
            Err(BodyError::TooLarge { limit: 10 })
        );
    }
}
