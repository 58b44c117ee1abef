//! Fuzz properties of the S2S frame reader (see `crate::fuzzing`): whatever a client
//! sends, however the body is cut into pieces, the reader yields payloads of at most
//! 2 MiB, each handed to [`parse_append_input`] as the session does, until a clean end or
//! a `bad_frame` error with a message; compressed payloads, garbage or bombs, included.

use std::convert::Infallible;

use proptest::prelude::*;

use super::*;
use crate::fuzzing::{self, mutate, mutations};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime")
}

/// A request body delivering `bytes` in pieces cut at `cuts` (fractions of the length).
fn body_of(bytes: Vec<u8>, cuts: &[prop::sample::Index]) -> Body {
    let mut at: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
    at.push(0);
    at.push(bytes.len());
    at.sort_unstable();
    let pieces: Vec<Result<Bytes, Infallible>> = at
        .windows(2)
        .map(|w| Ok(Bytes::copy_from_slice(&bytes[w[0]..w[1]])))
        .collect();
    Body::from_stream(futures::stream::iter(pieces))
}

/// Reads every frame: the payloads, then how the input ended (`None`: cleanly).
fn read_all(rt: &tokio::runtime::Runtime, body: Body) -> (Vec<Bytes>, Option<String>) {
    rt.block_on(async {
        let mut reader = FrameReader::new(body);
        let mut payloads = Vec::new();
        loop {
            match reader.next().await {
                Ok(Some(p)) => payloads.push(p),
                Ok(None) => return (payloads, None),
                Err(FrameError::Bad(m)) => return (payloads, Some(m)),
                Err(FrameError::Transport) => unreachable!("the body cannot fail"),
                Err(FrameError::TooSlow(_)) => unreachable!("every piece is ready at once"),
            }
        }
    })
}

/// Whatever the reader yields, it stays within the limits, and the session's next step,
/// parsing each payload, does not panic either.
fn check_read(payloads: &[Bytes], end: &Option<String>) -> Result<(), TestCaseError> {
    for p in payloads {
        prop_assert!(p.len() <= MAX_PAYLOAD_LEN);
        if let Err(e) = parse_append_input(p) {
            prop_assert!(!e.to_string().is_empty());
        }
    }
    if let Some(m) = end {
        prop_assert!(!m.is_empty(), "an error without a message");
    }
    Ok(())
}

fn compression() -> impl Strategy<Value = CompressionAlgorithm> {
    prop_oneof![
        Just(CompressionAlgorithm::None),
        Just(CompressionAlgorithm::Zstd),
        Just(CompressionAlgorithm::Gzip),
    ]
}

/// A payload: short arbitrary bytes, or long repetitive ones that are worth compressing.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 1..64),
        (prop::collection::vec(any::<u8>(), 1..8), 1024usize..4096).prop_map(|(unit, len)| unit
            .iter()
            .copied()
            .cycle()
            .take(len)
            .collect()),
    ]
}

/// A frame with a correct length prefix and any flag byte, whose body is arbitrary, or
/// a (possibly damaged) zstd or gzip stream: what reaches the decompressors.
fn frame_shaped() -> impl Strategy<Value = Vec<u8>> {
    let flag = prop_oneof![
        Just(0x00u8),
        Just(0x20),
        Just(0x40),
        Just(0x60),
        Just(0x80),
        any::<u8>()
    ];
    let body = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        (payload(), mutations(), any::<bool>()).prop_map(|(p, ms, gzip)| {
            let mut c = if gzip {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                enc.write_all(&p).expect("in memory");
                enc.finish().expect("in memory")
            } else {
                zstd::bulk::compress(&p, 1).expect("in memory")
            };
            mutate(&mut c, &ms);
            c
        }),
    ];
    (flag, body).prop_map(|(flag, body)| {
        let mut f = Vec::with_capacity(4 + body.len());
        f.extend_from_slice(&((body.len() + 1) as u32).to_be_bytes()[1..]);
        f.push(flag);
        f.extend(body);
        f
    })
}

fn cuts() -> impl Strategy<Value = Vec<prop::sample::Index>> {
    prop::collection::vec(any::<prop::sample::Index>(), 0..4)
}

proptest! {
    #![proptest_config(fuzzing::config(2000))]

    #[test]
    fn fuzz_s2s_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..128), cuts in cuts()) {
        let rt = runtime();
        let (payloads, end) = read_all(&rt, body_of(bytes, &cuts));
        check_read(&payloads, &end)?;
    }

    #[test]
    fn fuzz_s2s_frame_shaped(frames in prop::collection::vec(frame_shaped(), 1..4), cuts in cuts()) {
        let rt = runtime();
        let (payloads, end) = read_all(&rt, body_of(frames.concat(), &cuts));
        check_read(&payloads, &end)?;
    }

    /// Frames as a client writes them come back whole, however the body is cut.
    #[test]
    fn fuzz_s2s_frames_round_trip(
        sent in prop::collection::vec((payload(), compression()), 0..4),
        cuts in cuts(),
    ) {
        let bytes: Vec<u8> = sent.iter().flat_map(|(p, c)| regular_frame(p, *c)).collect();
        let rt = runtime();
        let (payloads, end) = read_all(&rt, body_of(bytes, &cuts));
        prop_assert_eq!(end, None);
        let sent: Vec<Bytes> = sent.into_iter().map(|(p, _)| Bytes::from(p)).collect();
        prop_assert_eq!(payloads, sent);
    }

    #[test]
    fn fuzz_s2s_frames_mutated(
        sent in prop::collection::vec((payload(), compression()), 1..4),
        ms in mutations(),
        cuts in cuts(),
    ) {
        let mut bytes: Vec<u8> = sent.iter().flat_map(|(p, c)| regular_frame(p, *c)).collect();
        mutate(&mut bytes, &ms);
        let rt = runtime();
        let (payloads, end) = read_all(&rt, body_of(bytes, &cuts));
        check_read(&payloads, &end)?;
    }
}

/// A frame of `body` with compression bits `algo`.
fn frame_with(algo: u8, body: &[u8]) -> Vec<u8> {
    let mut f = ((body.len() + 1) as u32).to_be_bytes()[1..].to_vec();
    f.push(algo << FLAG_COMPRESSION_SHIFT);
    f.extend_from_slice(body);
    f
}

/// Compressed frames that expand past 2 MiB (a few KiB that would inflate to 64 MiB)
/// are refused without being inflated; ones that expand to exactly 2 MiB − 1 are read.
#[test]
fn decompression_is_bounded_by_the_payload_limit() {
    let rt = runtime();
    let zstd_of = |n: usize| zstd::bulk::compress(&vec![0u8; n], 19).unwrap();
    let gzip_of = |n: usize| {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![0u8; n]).unwrap();
        enc.finish().unwrap()
    };
    let bomb = 64 * 1024 * 1024;
    for (algo, body, want) in [
        (1, zstd_of(bomb), "zstd: "),
        (2, gzip_of(bomb), "decompressed payload over 2 MiB"),
    ] {
        assert!(body.len() < MAX_FRAME_LEN, "the bomb fits in one frame");
        let (payloads, end) = read_all(&rt, Body::from(frame_with(algo, &body)));
        assert!(payloads.is_empty());
        let end = end.expect("refused");
        assert!(end.starts_with(want), "{end}");
    }
    for (algo, body) in [(1, zstd_of(MAX_PAYLOAD_LEN)), (2, gzip_of(MAX_PAYLOAD_LEN))] {
        let (payloads, end) = read_all(&rt, Body::from(frame_with(algo, &body)));
        assert_eq!(end, None);
        assert_eq!(payloads[0].len(), MAX_PAYLOAD_LEN);
    }
}
