//! What one node admits: every limit a client can run into, in one place, with its
//! default. Each is a `sluice serve` flag (README, "Limits"); the values travel from
//! [`crate::server::ServerConfig`] to the listener ([`crate::server`]) and to the
//! handlers ([`crate::http::AppState`]).
//!
//! The limits bound what a node holds for its clients, so that overload or a misbehaving
//! client slows or refuses requests instead of growing the process:
//! - bytes of appends admitted and not yet answered (a node-wide budget);
//! - bytes one read session buffers ahead of its client, and how long a client that takes
//!   nothing may keep them;
//! - connections, request header and body sizes;
//! - how long a connection may sit idle and how long a request's head or body may take
//!   to arrive.
//!
//! Sizes are written as bytes with an optional binary or decimal unit (`65536`, `64KiB`,
//! `128MiB`, `1GB`), as `s2 lite` takes `--append-inflight-bytes`; durations as a number
//! with a unit (`500ms`, `2s`, `1m`).

use std::time::Duration;

/// Every limit of one node. [`Limits::default`] holds the flags' defaults.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Bytes of append requests admitted across the node and not yet acked or refused.
    /// A unary append is admitted for its body before the body is read; an S2S append
    /// session's input frame before it is handed to the engine; the plate surface's `add`
    /// and command endpoints like unary appends. Admission waits while the budget is
    /// spent, and reading stops meanwhile (the client meets TCP or HTTP/2 flow control).
    pub append_inflight_bytes: usize,
    /// The longest an append waits for admission before it is refused, retryably and
    /// unapplied: below the SDK's 5 s request timeout, so a client hears a refusal it can
    /// retry rather than timing out on an append whose outcome it cannot know.
    pub append_admission_timeout: Duration,
    /// Bytes one read session (S2S or SSE) produces ahead of what its client has taken.
    /// One frame is always let through, so a frame larger than this still goes out.
    pub read_buffer_bytes: usize,
    /// A read session whose client takes nothing of what is buffered for this long is cut
    /// off, and so is a connection whose writes make no progress for this long.
    pub slow_reader_timeout: Duration,
    /// Open connections; beyond it the node stops accepting, and new connections wait in
    /// the listen backlog until one closes.
    pub max_connections: usize,
    /// The largest request head: HTTP/1.1 answers 431 beyond it, HTTP/2 advertises it as
    /// `SETTINGS_MAX_HEADER_LIST_SIZE` and refuses larger header blocks.
    pub max_header_bytes: usize,
    /// The largest unary request body (after decompression): 413 beyond it.
    pub max_body_bytes: usize,
    /// HTTP/1.1: a request head (and the next one on a kept-alive connection) must arrive
    /// within this.
    pub header_read_timeout: Duration,
    /// A connection with no request in progress for this long is closed (HTTP/2:
    /// `GOAWAY`).
    pub idle_timeout: Duration,
    /// A unary request body must arrive within this once the handler starts reading it;
    /// an S2S input frame within this of its first byte.
    pub body_read_timeout: Duration,
}

/// HTTP/1.1's smallest read buffer (hyper refuses a `max_buf_size` below it), so the
/// smallest request head limit.
pub const MIN_HEADER_BYTES: usize = 8192;

impl Default for Limits {
    fn default() -> Self {
        Self {
            append_inflight_bytes: 128 * MIB,
            append_admission_timeout: Duration::from_secs(2),
            read_buffer_bytes: 4 * MIB,
            slow_reader_timeout: Duration::from_secs(60),
            max_connections: 4096,
            max_header_bytes: 64 * KIB,
            max_body_bytes: 8 * MIB,
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            body_read_timeout: Duration::from_secs(30),
        }
    }
}

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// A size flag: bytes, optionally with a unit (`B`, `KiB`, `MiB`, `GiB` binary; `KB`,
/// `MB`, `GB` decimal), case-insensitive, a space allowed before the unit.
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 65536, 64KiB, 128MiB)"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => return Err(format!("unknown size unit {other:?} in {s:?}")),
    };
    n.checked_mul(multiplier)
        .and_then(|b| usize::try_from(b).ok())
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// A duration flag: a number with a unit (`ms`, `s`, `m`, `h`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 500ms, 2s, 1m)"))?;
    match unit.trim() {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n.saturating_mul(60))),
        "h" => Ok(Duration::from_secs(n.saturating_mul(3600))),
        "" => Err(format!("{s:?} needs a unit (ms, s, m, h)")),
        other => Err(format!("unknown duration unit {other:?} in {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_and_decimal_units() {
        assert_eq!(parse_bytes("65536"), Ok(65536));
        assert_eq!(parse_bytes("64KiB"), Ok(65536));
        assert_eq!(parse_bytes("128MiB"), Ok(128 << 20));
        assert_eq!(parse_bytes("128 mib"), Ok(128 << 20));
        assert_eq!(parse_bytes("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_bytes("2g"), Ok(2 << 30));
        assert!(parse_bytes("").is_err());
        assert!(parse_bytes("MiB").is_err());
        assert!(parse_bytes("12 parsecs").is_err());
        assert!(parse_bytes("99999999999999GiB").is_err());
    }

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("3 fortnights").is_err());
    }

    #[test]
    fn defaults_keep_admission_below_the_sdk_request_timeout() {
        let l = Limits::default();
        assert!(l.append_admission_timeout < Duration::from_secs(5));
        assert!(l.max_header_bytes >= MIN_HEADER_BYTES);
        assert!(l.read_buffer_bytes > 0 && l.append_inflight_bytes >= l.max_body_bytes);
    }
}
