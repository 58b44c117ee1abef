use s2_common::encryption::{EncryptionAlgorithm, EncryptionKey};

use super::Encryption;
use crate::engine::{
    AppendInput, EngineError, EngineResult, RecordBatchBuilder,
    chunk::{Chunk, ChunkBuilder},
    record::metered_size,
};

const STREAM: &str = "0123456789abcdef0123456789abcdef";
const CIPHERS: [EncryptionAlgorithm; 2] = [
    EncryptionAlgorithm::Aegis256,
    EncryptionAlgorithm::Aes256Gcm,
];

fn keyed(cipher: EncryptionAlgorithm, key: u8, stream: &str) -> Encryption {
    Encryption::resolve(Some(cipher), Some(EncryptionKey::new([key; 32])), stream).unwrap()
}

/// A record with a header and a body, then a fence command.
fn input() -> AppendInput {
    let mut b = RecordBatchBuilder::new();
    b.push(
        Some(7),
        [(&b"secret-header"[..], &b"secret-value"[..])].into_iter(),
        b"secret body",
    )
    .unwrap();
    b.push(None, [(&b""[..], &b"fence"[..])].into_iter(), b"token-1")
        .unwrap();
    AppendInput {
        batch: b.finish().unwrap(),
        match_seq_num: None,
        fencing_token: None,
    }
}

/// The chunk the appender would write for `input` from seq_num 5, as read back.
fn stored(input: &AppendInput) -> Chunk {
    let mut chunk = ChunkBuilder::new(5, input.batch.payload_len());
    for (i, (meta, fields)) in input.batch.encoded_records().enumerate() {
        chunk.push(100 + i as u64, meta.metered as usize, fields);
    }
    Chunk::decode(chunk.finish().bytes().clone()).unwrap()
}

/// Every record of `chunk`, opened.
fn open(e: &Encryption, chunk: &Chunk) -> EngineResult<Chunk> {
    let records = (0..chunk.len()).map(|i| chunk.record(i));
    Ok(e.open_records(records, chunk.bytes().len())?
        .expect("records"))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn sealed_records_round_trip_with_both_ciphers_and_commands_stay_plaintext() {
    for cipher in CIPHERS {
        let e = keyed(cipher, 0x42, STREAM);
        let sealed = e.seal(input());
        assert_eq!(sealed.batch.cipher(), Some(cipher));
        let chunk = stored(&sealed);
        for secret in [&b"secret body"[..], b"secret-header", b"secret-value"] {
            assert!(
                !contains(chunk.bytes(), secret),
                "{cipher}: plaintext stored"
            );
        }
        assert!(
            contains(chunk.bytes(), b"token-1"),
            "commands stay plaintext"
        );
        // Metering is the plaintext's, whatever the cipher.
        assert_eq!(chunk.record(0).metered, metered_size(1, 25, 11));
        assert_eq!(chunk.record(1).metered, metered_size(1, 5, 7));

        let opened = open(&e, &chunk).unwrap();
        let records: Vec<_> = (0..opened.len()).map(|i| opened.record(i)).collect();
        assert_eq!(records.len(), 2);
        assert_eq!((records[0].seq_num, records[0].timestamp), (5, 100));
        assert_eq!(records[1].seq_num, 6);
        let (headers, body) = records[0].view().parts().unwrap();
        assert_eq!(headers, vec![(&b"secret-header"[..], &b"secret-value"[..])]);
        assert_eq!(body, b"secret body");
        let (headers, body) = records[1].view().parts().unwrap();
        assert_eq!(headers, vec![(&b""[..], &b"fence"[..])]);
        assert_eq!(body, b"token-1");
        let metered: Vec<_> = records.iter().map(|r| r.metered).collect();
        assert_eq!(metered, [metered_size(1, 25, 11), metered_size(1, 5, 7)]);
    }
}

#[test]
fn every_seal_takes_a_fresh_nonce() {
    for cipher in CIPHERS {
        let e = keyed(cipher, 1, STREAM);
        let (a, b) = (stored(&e.seal(input())), stored(&e.seal(input())));
        assert_ne!(a.record(0).entry, b.record(0).entry, "{cipher}");
    }
}

#[test]
fn a_wrong_key_or_another_stream_fails_as_decryption_failed() {
    for cipher in CIPHERS {
        let chunk = || stored(&keyed(cipher, 1, STREAM).seal(input()));
        for other in [keyed(cipher, 2, STREAM), keyed(cipher, 1, "another-stream")] {
            let err = open(&other, &chunk()).unwrap_err();
            assert!(
                matches!(&err, EngineError::DecryptionFailed(m) if m == "record decryption failed"),
                "{cipher}: {err:?}"
            );
        }
    }
}

#[test]
fn any_changed_byte_of_an_envelope_fails_to_open() {
    for cipher in CIPHERS {
        let e = keyed(cipher, 9, STREAM);
        let chunk = stored(&e.seal(input()));
        let envelope = chunk.record(0).view().sealed().unwrap().unwrap().envelope;
        // Past the format byte: nonce, ciphertext and tag are all authenticated.
        for i in 1..envelope.len() {
            let mut changed = envelope.to_vec();
            changed[i] ^= 0x01;
            assert!(
                matches!(
                    e.open_envelope(&changed),
                    Err(EngineError::DecryptionFailed(_))
                ),
                "{cipher}: byte {i}"
            );
        }
        // The format byte names the other cipher, or none; a cut envelope is too short.
        let other = if envelope[0] == 0x01 { 0x02 } else { 0x01 };
        for format in [other, 0x00, 0x03, 0xff] {
            let mut changed = envelope.to_vec();
            changed[0] = format;
            assert!(
                matches!(e.open_envelope(&changed), Err(EngineError::Corrupt(_))),
                "{cipher}: format {format}"
            );
        }
        assert!(matches!(
            e.open_envelope(&envelope[..20]),
            Err(EngineError::Corrupt(_))
        ));
        assert!(e.open_envelope(envelope).is_ok());
    }
}

#[test]
fn keys_resolve_as_s2_resolves_them() {
    let missing = Encryption::resolve(Some(EncryptionAlgorithm::Aegis256), None, STREAM);
    assert!(matches!(missing, Err(EngineError::EncryptionKey(m))
        if m == "missing encryption key for stream cipher 'aegis-256'"));
    let short = Encryption::resolve(
        Some(EncryptionAlgorithm::Aes256Gcm),
        Some(EncryptionKey::new([0; 16])),
        STREAM,
    );
    assert!(matches!(short, Err(EngineError::EncryptionKey(m))
        if m == "invalid encryption key length for stream cipher 'aes-256-gcm': 16"));
    let not_base64 = Encryption::resolve(
        Some(EncryptionAlgorithm::Aes256Gcm),
        Some("!!!!".parse().unwrap()),
        STREAM,
    );
    assert!(matches!(not_base64, Err(EngineError::EncryptionKey(_))));
    // A plain stream ignores any key, and its records are stored as they are.
    let plain = Encryption::resolve(None, Some("!!!!".parse().unwrap()), STREAM).unwrap();
    assert_eq!(plain.cipher(), None);
    let input = plain.seal(input());
    assert_eq!(input.batch.cipher(), None);
    let chunk = stored(&input);
    assert!(contains(chunk.bytes(), b"secret body"));
    assert_eq!(chunk.record(0).view().parts().unwrap().1, b"secret body");
}

/// A plaintext record where only sealed ones (and commands) may be is stored data gone
/// wrong, never served as it is.
#[test]
fn a_plaintext_record_on_an_encrypted_stream_is_refused() {
    let chunk = stored(&input());
    let err = open(&keyed(EncryptionAlgorithm::Aegis256, 1, STREAM), &chunk).unwrap_err();
    assert!(matches!(err, EngineError::Corrupt(_)), "{err:?}");
}
