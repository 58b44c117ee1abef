//! The format of a watch: the request names the streams the asking node follows (JSON), the
//! answer carries a frame per newer state (a length-prefixed JSON head, then the manifest's
//! bytes as stored). An empty answer means nothing became newer while the watch was held.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::{
    engine::notices::{Followed, Notice},
    storage::ETag,
};

/// The path of the watch on every node. S2's paths begin `/v1/`, the plate surface's with a
/// plate name (which cannot begin with `_`), the dashboard's with `/dashboard`.
pub const WATCH_PATH: &str = "/_sluice/peer/v1/watch";

/// A watch: the streams the asking node follows, with the versions it knows, and how long
/// the answering node may hold the request before answering that nothing is newer.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WatchRequest {
    pub hold_ms: u64,
    pub streams: Vec<WatchedStream>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WatchedStream {
    pub basin: String,
    pub stream: String,
    pub id: String,
    pub version: u64,
}

impl From<Followed> for WatchedStream {
    fn from(f: Followed) -> Self {
        Self {
            basin: f.basin,
            stream: f.stream,
            id: f.id,
            version: f.version,
        }
    }
}

impl From<WatchedStream> for Followed {
    fn from(w: WatchedStream) -> Self {
        Self {
            basin: w.basin,
            stream: w.stream,
            id: w.id,
            version: w.version,
        }
    }
}

/// The head of one frame of an answer.
#[derive(Debug, Serialize, Deserialize)]
struct FrameHead {
    basin: String,
    stream: String,
    id: String,
    etag: String,
}

/// The answer's body: per notice, a big-endian `u32` length and the JSON head, then a
/// `u32` length and the manifest.
pub fn encode_answer(notices: &[Notice]) -> Bytes {
    let mut out = BytesMut::new();
    for n in notices {
        let head = serde_json::to_vec(&FrameHead {
            basin: n.basin.clone(),
            stream: n.stream.clone(),
            id: n.id.clone(),
            etag: n.etag.as_str().to_owned(),
        })
        .expect("frame heads serialize");
        out.put_u32(len_u32(head.len()));
        out.put_slice(&head);
        out.put_u32(len_u32(n.manifest.len()));
        out.put_slice(&n.manifest);
    }
    out.freeze()
}

fn len_u32(len: usize) -> u32 {
    u32::try_from(len).expect("a manifest is far below 4 GiB")
}

/// The notices of an answer's body; an error names what is malformed.
pub fn decode_answer(mut body: Bytes) -> Result<Vec<Notice>, String> {
    let mut notices = Vec::new();
    while body.has_remaining() {
        let head = take_frame(&mut body, "head")?;
        let head: FrameHead =
            serde_json::from_slice(&head).map_err(|e| format!("frame head: {e}"))?;
        let manifest = take_frame(&mut body, "manifest")?;
        notices.push(Notice {
            basin: head.basin,
            stream: head.stream,
            id: head.id,
            etag: ETag::new(head.etag),
            manifest,
        });
    }
    Ok(notices)
}

fn take_frame(body: &mut Bytes, what: &str) -> Result<Bytes, String> {
    if body.remaining() < 4 {
        return Err(format!("{what}: truncated length"));
    }
    let len = body.get_u32() as usize;
    if body.remaining() < len {
        return Err(format!(
            "{what}: {len} bytes announced, {} left",
            body.remaining()
        ));
    }
    Ok(body.split_to(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(i: u8) -> Notice {
        Notice {
            basin: format!("b{i}"),
            stream: format!("s{i}"),
            id: format!("id{i}"),
            etag: ETag::new(format!("\"e{i}\"")),
            manifest: Bytes::from(vec![i; 10 * i as usize]),
        }
    }

    #[test]
    fn answers_round_trip() {
        let notices = vec![notice(1), notice(0), notice(7)];
        assert_eq!(decode_answer(encode_answer(&notices)).unwrap(), notices);
        assert!(decode_answer(Bytes::new()).unwrap().is_empty());
    }

    #[test]
    fn a_truncated_answer_is_an_error_not_a_panic() {
        let body = encode_answer(&[notice(3)]);
        for cut in 1..body.len() {
            assert!(decode_answer(body.slice(..cut)).is_err(), "cut at {cut}");
        }
    }
}
