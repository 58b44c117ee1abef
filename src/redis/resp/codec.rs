//! RESP framing, both ways: requests in — multibulk (`*N\r\n$len\r\n…`) and inline lines,
//! read as Redis 7.0's `processMultibulkBuffer` and `processInlineBuffer` read them, with
//! their limits and `Protocol error: …` texts — and replies out, in RESP2 or RESP3.
//!
//! The decoder is incremental: a partly received command keeps its finished arguments
//! and the length of the one in flight, so a large argument arriving in many reads is
//! scanned once, not once per read.

use bytes::{Buf, Bytes, BytesMut};

use crate::redis::{Reply, ids::canonical_i64};

/// The longest inline command, and the longest count line of a multibulk request, that
/// is read without finding its end (Redis's `PROTO_INLINE_MAX_SIZE`, 64 KiB).
pub const INLINE_MAX: usize = 64 * 1024;
/// Before a connection authenticates, a multibulk request may have at most this many
/// arguments and each at most [`UNAUTH_MAX_BULK`] bytes, as in Redis 7.0: a client that
/// has not shown a password cannot make the node buffer much.
pub const UNAUTH_MAX_MULTIBULK: i64 = 10;
pub const UNAUTH_MAX_BULK: i64 = 16 * 1024;

/// What a request may be: the most arguments of one command and the longest argument.
#[derive(Debug, Clone, Copy)]
pub struct FrameLimits {
    pub max_multibulk: usize,
    pub max_bulk: usize,
}

/// A malformed request. The connection answers `-ERR Protocol error: <text>` and closes.
#[derive(Debug, Clone, PartialEq)]
pub struct ProtocolError(pub String);

impl ProtocolError {
    /// The error reply's text, without the leading `-`.
    pub fn reply_text(&self) -> String {
        format!("ERR Protocol error: {}", self.0)
    }
}

/// Reads commands out of a connection's input buffer.
#[derive(Debug, Default)]
pub struct Decoder {
    /// Arguments of a multibulk request still to come (0: between requests).
    remaining: usize,
    /// The length of the argument in flight, once its `$len` line is read.
    bulk_len: Option<usize>,
    args: Vec<Bytes>,
    /// Bytes of `args`, for the query-buffer bound.
    args_bytes: usize,
}

impl Decoder {
    /// The next complete command in `buf` (consumed from it), `Ok(None)` if more input is
    /// needed. An empty command (`*0`, an empty line) yields an empty list, which callers
    /// skip as Redis does. `authenticated: false` applies the unauthenticated bounds.
    pub fn decode(
        &mut self,
        buf: &mut BytesMut,
        limits: FrameLimits,
        authenticated: bool,
    ) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        if self.remaining == 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            if buf[0] != b'*' {
                return inline(buf);
            }
            let Some(line) = line_at(buf, 1, "too big mbulk count string")? else {
                return Ok(None);
            };
            let n = canonical_i64(&buf[1..line]).filter(|n| *n <= i64::from(i32::MAX));
            let n = match n {
                Some(n) if n > limits.max_multibulk as i64 => None,
                other => other,
            };
            let Some(n) = n else {
                return Err(proto("invalid multibulk length"));
            };
            if n > UNAUTH_MAX_MULTIBULK && !authenticated {
                return Err(proto("unauthenticated multibulk length"));
            }
            buf.advance(line + 2);
            if n <= 0 {
                return Ok(Some(Vec::new()));
            }
            self.remaining = n as usize;
            self.args = Vec::with_capacity(self.remaining.min(1024));
            self.args_bytes = 0;
        }
        while self.remaining > 0 {
            let len = match self.bulk_len {
                Some(len) => len,
                None => {
                    let Some(line) = line_at(buf, 0, "too big bulk count string")? else {
                        return Ok(None);
                    };
                    if buf[0] != b'$' {
                        let got = char::from(buf[0]);
                        return Err(proto(&format!("expected '$', got '{got}'")));
                    }
                    let len = canonical_i64(&buf[1..line])
                        .filter(|n| *n >= 0 && *n as u64 <= limits.max_bulk as u64);
                    let Some(len) = len else {
                        return Err(proto("invalid bulk length"));
                    };
                    if len > UNAUTH_MAX_BULK && !authenticated {
                        return Err(proto("unauthenticated bulk length"));
                    }
                    buf.advance(line + 2);
                    if buf.capacity() < len as usize + 2 {
                        buf.reserve(len as usize + 2 - buf.len());
                    }
                    self.bulk_len = Some(len as usize);
                    len as usize
                }
            };
            // Redis skips the two bytes after the argument without looking at them.
            if buf.len() < len + 2 {
                return Ok(None);
            }
            let arg = buf.split_to(len).freeze();
            buf.advance(2);
            self.args_bytes += arg.len();
            self.args.push(arg);
            self.bulk_len = None;
            self.remaining -= 1;
        }
        self.args_bytes = 0;
        Ok(Some(std::mem::take(&mut self.args)))
    }

    /// Bytes held for the command being read: its finished arguments.
    pub fn pending_bytes(&self) -> usize {
        self.args_bytes
    }
}

fn proto(text: &str) -> ProtocolError {
    ProtocolError(text.replace(['\r', '\n'], " "))
}

/// The index of the `\r` ending the line that starts at `from`, once the byte after it
/// is there too (Redis takes that byte as the `\n` without checking it). A line longer
/// than [`INLINE_MAX`] without its end is `too_big`.
fn line_at(buf: &[u8], from: usize, too_big: &str) -> Result<Option<usize>, ProtocolError> {
    match memchr(b'\r', buf) {
        Some(at) if at >= from && at + 1 < buf.len() => Ok(Some(at)),
        Some(at) if at >= from => Ok(None),
        _ if buf.len() > INLINE_MAX => Err(proto(too_big)),
        _ => Ok(None),
    }
}

fn memchr(byte: u8, buf: &[u8]) -> Option<usize> {
    buf.iter().position(|b| *b == byte)
}

/// An inline command: one line, split as `sdssplitargs` splits it.
fn inline(buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let Some(newline) = memchr(b'\n', buf) else {
        if buf.len() > INLINE_MAX {
            return Err(proto("too big inline request"));
        }
        return Ok(None);
    };
    let end = if newline > 0 && buf[newline - 1] == b'\r' {
        newline - 1
    } else {
        newline
    };
    let args = split_args(&buf[..end]).ok_or_else(|| proto("unbalanced quotes in request"));
    buf.advance(newline + 1);
    Ok(Some(args?))
}

/// Redis's `sdssplitargs`: words separated by spaces; `"…"` with C-like escapes (`\n`,
/// `\xHH`, …) and `'…'` with `\'`; a closing quote must be followed by a space or the
/// end. The line is a C string to it: a NUL ends it. `None`: unbalanced quotes.
pub fn split_args(line: &[u8]) -> Option<Vec<Bytes>> {
    let line = &line[..memchr(0, line).unwrap_or(line.len())];
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    let is_space = |b: u8| matches!(b, b' ' | b'\n' | b'\r' | b'\t' | 0x0b | 0x0c);
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && is_space(line[i]) {
            i += 1;
        }
        if i >= line.len() {
            return Some(out);
        }
        let (mut in_double, mut in_single) = (false, false);
        let mut word = Vec::new();
        loop {
            let c = at(i);
            if in_double {
                if c == b'\\'
                    && at(i + 1) == b'x'
                    && hex(at(i + 2)).is_some()
                    && hex(at(i + 3)).is_some()
                {
                    word.push(hex(at(i + 2))? * 16 + hex(at(i + 3))?);
                    i += 3;
                } else if c == b'\\' && at(i + 1) != 0 {
                    i += 1;
                    word.push(match at(i) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                } else if c == b'"' {
                    if at(i + 1) != 0 && !is_space(at(i + 1)) {
                        return None;
                    }
                    i += 1;
                    break;
                } else if c == 0 {
                    return None;
                } else {
                    word.push(c);
                }
            } else if in_single {
                if c == b'\\' && at(i + 1) == b'\'' {
                    i += 1;
                    word.push(b'\'');
                } else if c == b'\'' {
                    if at(i + 1) != 0 && !is_space(at(i + 1)) {
                        return None;
                    }
                    i += 1;
                    break;
                } else if c == 0 {
                    return None;
                } else {
                    word.push(c);
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => break,
                    b'"' => in_double = true,
                    b'\'' => in_single = true,
                    other => word.push(other),
                }
            }
            i += 1;
        }
        out.push(Bytes::from(word));
    }
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Which RESP a connection speaks (`HELLO 2|3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Resp2,
    Resp3,
}

/// Appends `reply` to `out` in `proto`.
pub fn encode(reply: &Reply, proto: Protocol, out: &mut BytesMut) {
    let resp3 = proto == Protocol::Resp3;
    match reply {
        Reply::Nil if resp3 => out.extend_from_slice(b"_\r\n"),
        Reply::NilArray if resp3 => out.extend_from_slice(b"_\r\n"),
        Reply::Nil => out.extend_from_slice(b"$-1\r\n"),
        Reply::NilArray => out.extend_from_slice(b"*-1\r\n"),
        Reply::Int(n) => header(out, b':', *n),
        Reply::Simple(s) => {
            out.extend_from_slice(b"+");
            out.extend_from_slice(s.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Reply::Bulk(b) => bulk(out, b'$', b"", b),
        Reply::Verbatim(b) if resp3 => bulk(out, b'=', b"txt:", b),
        Reply::Verbatim(b) => bulk(out, b'$', b"", b),
        Reply::Array(items) => {
            header(out, b'*', items.len() as i64);
            items.iter().for_each(|r| encode(r, proto, out));
        }
        Reply::Set(items) => {
            header(out, if resp3 { b'~' } else { b'*' }, items.len() as i64);
            items.iter().for_each(|r| encode(r, proto, out));
        }
        Reply::Map(pairs) | Reply::PairMap(pairs) if resp3 => {
            header(out, b'%', pairs.len() as i64);
            for (k, v) in pairs {
                encode(k, proto, out);
                encode(v, proto, out);
            }
        }
        Reply::Map(pairs) => {
            header(out, b'*', 2 * pairs.len() as i64);
            for (k, v) in pairs {
                encode(k, proto, out);
                encode(v, proto, out);
            }
        }
        Reply::PairMap(pairs) => {
            header(out, b'*', pairs.len() as i64);
            for (k, v) in pairs {
                out.extend_from_slice(b"*2\r\n");
                encode(k, proto, out);
                encode(v, proto, out);
            }
        }
    }
}

/// Appends an error reply: `-<text>\r\n`, CR and LF inside it made spaces (Redis keeps
/// an error on one line).
pub fn encode_error(text: &str, out: &mut BytesMut) {
    out.extend_from_slice(b"-");
    out.extend_from_slice(text.replace(['\r', '\n'], " ").as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn header(out: &mut BytesMut, kind: u8, n: i64) {
    out.extend_from_slice(&[kind]);
    out.extend_from_slice(n.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn bulk(out: &mut BytesMut, kind: u8, prefix: &[u8], body: &[u8]) {
    header(out, kind, (prefix.len() + body.len()) as i64);
    out.extend_from_slice(prefix);
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: FrameLimits = FrameLimits {
        max_multibulk: 1024,
        max_bulk: 1 << 20,
    };

    fn decode_all(input: &[u8], authenticated: bool) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
        let mut buf = BytesMut::from(input);
        let mut d = Decoder::default();
        let mut out = Vec::new();
        while let Some(cmd) = d.decode(&mut buf, LIMITS, authenticated)? {
            out.push(cmd);
        }
        Ok(out)
    }

    fn words(ws: &[&str]) -> Vec<Bytes> {
        ws.iter().map(|w| Bytes::from(w.to_string())).collect()
    }

    #[test]
    fn multibulk_requests_decode_across_reads() {
        let input = b"*3\r\n$4\r\nXADD\r\n$1\r\nk\r\n$11\r\nhello world\r\n*1\r\n$4\r\nPING\r\n";
        let mut d = Decoder::default();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in input {
            buf.extend_from_slice(&[*b]);
            while let Some(cmd) = d.decode(&mut buf, LIMITS, true).unwrap() {
                got.push(cmd);
            }
        }
        assert_eq!(
            got,
            vec![words(&["XADD", "k", "hello world"]), words(&["PING"])]
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn inline_commands_split_as_redis_splits_them() {
        let got = decode_all(
            b"PING\r\nset \"a b\" 'c\\'d' \"\\x41\\n\"\nECHO x\0ignored\n\r\n",
            true,
        )
        .unwrap();
        assert_eq!(got[0], words(&["PING"]));
        assert_eq!(got[1], words(&["set", "a b", "c'd", "A\n"]));
        assert_eq!(got[2], words(&["ECHO", "x"]));
        assert!(got[3].is_empty(), "an empty line is an empty command");
        for bad in [&b"ECHO \"abc\n"[..], b"ECHO 'a'b\n", b"ECHO \"a\"b\n"] {
            assert_eq!(
                decode_all(bad, true).unwrap_err().reply_text(),
                "ERR Protocol error: unbalanced quotes in request"
            );
        }
    }

    #[test]
    fn malformed_requests_have_redis_texts() {
        let err = |input: &[u8], auth: bool| decode_all(input, auth).unwrap_err().0;
        assert_eq!(err(b"*x\r\n", true), "invalid multibulk length");
        assert_eq!(err(b"*2048\r\n", true), "invalid multibulk length");
        assert_eq!(err(b"*3000000000\r\n", true), "invalid multibulk length");
        assert_eq!(err(b"*1\r\n+PING\r\n", true), "expected '$', got '+'");
        assert_eq!(err(b"*1\r\n$-1\r\n", true), "invalid bulk length");
        assert_eq!(err(b"*1\r\n$2000000\r\n", true), "invalid bulk length");
        assert_eq!(err(b"*11\r\n", false), "unauthenticated multibulk length");
        assert_eq!(
            err(b"*1\r\n$16385\r\n", false),
            "unauthenticated bulk length"
        );
        let long = vec![b'a'; INLINE_MAX + 1];
        assert_eq!(err(&long, true), "too big inline request");
        let mut count = b"*".to_vec();
        count.extend(vec![b'1'; INLINE_MAX + 1]);
        assert_eq!(err(&count, true), "too big mbulk count string");
        assert_eq!(decode_all(b"*0\r\n*-1\r\n", true).unwrap().len(), 2);
    }

    fn encoded(reply: &Reply, proto: Protocol) -> String {
        let mut out = BytesMut::new();
        encode(reply, proto, &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn replies_encode_in_both_protocols() {
        let map = Reply::map([("a", Reply::Int(1))]);
        assert_eq!(encoded(&map, Protocol::Resp2), "*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(encoded(&map, Protocol::Resp3), "%1\r\n$1\r\na\r\n:1\r\n");
        let streams = Reply::streams([("k", Reply::Array(vec![]))]);
        assert_eq!(
            encoded(&streams, Protocol::Resp2),
            "*1\r\n*2\r\n$1\r\nk\r\n*0\r\n"
        );
        assert_eq!(
            encoded(&streams, Protocol::Resp3),
            "%1\r\n$1\r\nk\r\n*0\r\n"
        );
        assert_eq!(encoded(&Reply::Nil, Protocol::Resp2), "$-1\r\n");
        assert_eq!(encoded(&Reply::NilArray, Protocol::Resp2), "*-1\r\n");
        assert_eq!(encoded(&Reply::NilArray, Protocol::Resp3), "_\r\n");
        let set = Reply::Set(vec![Reply::Simple("fast")]);
        assert_eq!(encoded(&set, Protocol::Resp3), "~1\r\n+fast\r\n");
        let text = Reply::Verbatim(Bytes::from_static(b"a:1"));
        assert_eq!(encoded(&text, Protocol::Resp3), "=7\r\ntxt:a:1\r\n");
        assert_eq!(encoded(&text, Protocol::Resp2), "$3\r\na:1\r\n");
        let mut out = BytesMut::new();
        encode_error("ERR a\r\nb", &mut out);
        assert_eq!(&out[..], b"-ERR a  b\r\n");
    }
}
