//! How a forwarded command travels between nodes: the request is the command's arguments,
//! each length-prefixed; the answer is the command's result, a reply or an error, in a
//! tagged binary form that keeps every distinction [`Reply`] makes (a nil bulk string from
//! a nil array, a map from a pair map …), so a front door renders a forwarded reply exactly
//! as it would have rendered the same reply computed on its own node.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::redis::{RedisError, RedisResult, Reply};

/// The node's id, asked by every peer to know which nodes are up.
pub const NODE_PATH: &str = "/_sluice/peer/v1/node";
/// Where a peer sends a command whose key this node is home to.
pub const COMMAND_PATH: &str = "/_sluice/peer/v1/redis";
/// The plate a forwarded command runs on.
pub const PLATE_HEADER: &str = "sluice-plate";
/// The `Authorization` the command came with on the forwarding node, if any.
pub const CREDENTIAL_HEADER: &str = "sluice-credential";
/// The longest a forwarded blocking read may wait before answering nil (milliseconds).
pub const BLOCK_CAP_HEADER: &str = "sluice-block-cap-ms";

/// Replies nest no deeper than this; Redis's stream replies nest five levels at most.
const MAX_DEPTH: usize = 16;

pub fn encode_argv(argv: &[Bytes]) -> Bytes {
    let mut out = BytesMut::with_capacity(argv.iter().map(|a| a.len() + 4).sum());
    for arg in argv {
        put_bytes(&mut out, arg);
    }
    out.freeze()
}

pub fn decode_argv(mut body: Bytes) -> Result<Vec<Bytes>, String> {
    let mut argv = Vec::new();
    while body.has_remaining() {
        argv.push(take_bytes(&mut body)?);
    }
    if argv.is_empty() {
        return Err("a forwarded command names no command".into());
    }
    Ok(argv)
}

pub fn encode_result(result: &RedisResult<Reply>) -> Bytes {
    let mut out = BytesMut::new();
    match result {
        Ok(reply) => {
            out.put_u8(0);
            put_reply(&mut out, reply);
        }
        Err(e) => {
            let tag = match e {
                RedisError::Reply(_) => 1,
                RedisError::Unsupported(_) => 2,
                RedisError::MissingAuthorization(_) => 3,
                RedisError::InvalidAuthorization(_) => 4,
                RedisError::PermissionDenied(_) => 5,
                RedisError::PlateNotFound(_) => 6,
                RedisError::Unavailable(_) => 7,
            };
            out.put_u8(tag);
            put_bytes(&mut out, e.message().as_bytes());
        }
    }
    out.freeze()
}

pub fn decode_result(mut body: Bytes) -> Result<RedisResult<Reply>, String> {
    let tag = take_u8(&mut body)?;
    let result = if tag == 0 {
        Ok(take_reply(&mut body, 0)?)
    } else {
        let message = String::from_utf8(take_bytes(&mut body)?.to_vec())
            .map_err(|_| "an error's text is not UTF-8".to_owned())?;
        Err(match tag {
            1 => RedisError::Reply(message),
            2 => RedisError::Unsupported(message),
            3 => RedisError::MissingAuthorization(message),
            4 => RedisError::InvalidAuthorization(message),
            5 => RedisError::PermissionDenied(message),
            6 => RedisError::PlateNotFound(message),
            7 => RedisError::Unavailable(message),
            other => return Err(format!("unknown result tag {other}")),
        })
    };
    if body.has_remaining() {
        return Err("bytes after the result".into());
    }
    Ok(result)
}

fn put_bytes(out: &mut BytesMut, b: &[u8]) {
    out.put_u32(u32::try_from(b.len()).expect("an argument fits the node's bulk limit"));
    out.put_slice(b);
}

fn put_list(out: &mut BytesMut, tag: u8, items: &[Reply]) {
    out.put_u8(tag);
    out.put_u32(items.len() as u32);
    for item in items {
        put_reply(out, item);
    }
}

fn put_pairs(out: &mut BytesMut, tag: u8, pairs: &[(Reply, Reply)]) {
    out.put_u8(tag);
    out.put_u32(pairs.len() as u32);
    for (k, v) in pairs {
        put_reply(out, k);
        put_reply(out, v);
    }
}

fn put_reply(out: &mut BytesMut, reply: &Reply) {
    match reply {
        Reply::Nil => out.put_u8(0),
        Reply::NilArray => out.put_u8(1),
        Reply::Int(n) => {
            out.put_u8(2);
            out.put_i64(*n);
        }
        Reply::Simple(s) => {
            out.put_u8(3);
            put_bytes(out, s.as_bytes());
        }
        Reply::Bulk(b) => {
            out.put_u8(4);
            put_bytes(out, b);
        }
        Reply::Array(items) => put_list(out, 5, items),
        Reply::Map(pairs) => put_pairs(out, 6, pairs),
        Reply::PairMap(pairs) => put_pairs(out, 7, pairs),
        Reply::Set(items) => put_list(out, 8, items),
        Reply::Verbatim(b) => {
            out.put_u8(9);
            put_bytes(out, b);
        }
    }
}

fn take_reply(body: &mut Bytes, depth: usize) -> Result<Reply, String> {
    if depth > MAX_DEPTH {
        return Err("a reply nested too deep".into());
    }
    let list = |body: &mut Bytes| -> Result<Vec<Reply>, String> {
        let n = take_len(body)?;
        (0..n).map(|_| take_reply(body, depth + 1)).collect()
    };
    let pairs = |body: &mut Bytes| -> Result<Vec<(Reply, Reply)>, String> {
        let n = take_len(body)?;
        (0..n)
            .map(|_| Ok((take_reply(body, depth + 1)?, take_reply(body, depth + 1)?)))
            .collect()
    };
    Ok(match take_u8(body)? {
        0 => Reply::Nil,
        1 => Reply::NilArray,
        2 => {
            if body.remaining() < 8 {
                return Err("a truncated integer".into());
            }
            Reply::Int(body.get_i64())
        }
        3 => Reply::Simple(simple(&take_bytes(body)?)?),
        4 => Reply::Bulk(take_bytes(body)?),
        5 => Reply::Array(list(body)?),
        6 => Reply::Map(pairs(body)?),
        7 => Reply::PairMap(pairs(body)?),
        8 => Reply::Set(list(body)?),
        9 => Reply::Verbatim(take_bytes(body)?),
        other => return Err(format!("unknown reply tag {other}")),
    })
}

/// The stream commands' simple strings; a [`Reply::Simple`] is a static text.
fn simple(text: &[u8]) -> Result<&'static str, String> {
    ["OK", "PONG", "RESET"]
        .into_iter()
        .find(|s| s.as_bytes() == text)
        .ok_or_else(|| format!("unknown simple string {:?}", String::from_utf8_lossy(text)))
}

fn take_u8(body: &mut Bytes) -> Result<u8, String> {
    if !body.has_remaining() {
        return Err("a truncated answer".into());
    }
    Ok(body.get_u8())
}

/// A count of items still to come; each takes at least one byte, which bounds it.
fn take_len(body: &mut Bytes) -> Result<usize, String> {
    if body.remaining() < 4 {
        return Err("a truncated length".into());
    }
    let n = body.get_u32() as usize;
    if n > body.remaining() {
        return Err("a length past the end".into());
    }
    Ok(n)
}

fn take_bytes(body: &mut Bytes) -> Result<Bytes, String> {
    let n = take_len(body)?;
    Ok(body.split_to(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_kind() -> Reply {
        Reply::Array(vec![
            Reply::Nil,
            Reply::NilArray,
            Reply::Int(-7),
            Reply::ok(),
            Reply::text("1-0"),
            Reply::map([("a", Reply::Int(1))]),
            Reply::streams([("k", Reply::Array(vec![]))]),
            Reply::Set(vec![Reply::text("x")]),
            Reply::Verbatim(Bytes::from_static(b"txt")),
            Reply::Bulk(Bytes::from_static(b"\x00\xff")),
        ])
    }

    #[test]
    fn results_come_back_as_they_went() {
        let cases = [
            Ok(every_kind()),
            Ok(Reply::NilArray),
            Err(RedisError::Reply("NOGROUP No such key 'k'".into())),
            Err(RedisError::PermissionDenied("read".into())),
            Err(RedisError::Unavailable("store".into())),
        ];
        for case in cases {
            assert_eq!(decode_result(encode_result(&case)).unwrap(), case);
        }
    }

    #[test]
    fn arguments_come_back_as_they_went() {
        let argv: Vec<Bytes> = ["XADD", "k", "*", "", "v\r\n"]
            .into_iter()
            .map(Bytes::from)
            .collect();
        assert_eq!(decode_argv(encode_argv(&argv)).unwrap(), argv);
        assert!(decode_argv(Bytes::new()).is_err());
    }

    #[test]
    fn damaged_answers_are_errors_not_panics() {
        let whole = encode_result(&Ok(every_kind()));
        for cut in 0..whole.len() {
            assert!(decode_result(whole.slice(..cut)).is_err(), "cut at {cut}");
        }
        let mut longer = BytesMut::from(&whole[..]);
        longer.put_u8(0);
        assert!(decode_result(longer.freeze()).is_err());
        let mut deep = BytesMut::new();
        deep.put_u8(0);
        for _ in 0..100 {
            deep.put_u8(5);
            deep.put_u32(1);
        }
        deep.put_u8(0);
        assert!(decode_result(deep.freeze()).is_err());
        assert!(decode_argv(Bytes::from_static(b"\x00\x00\x00\x09ab")).is_err());
    }
}
