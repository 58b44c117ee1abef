//! Encrypted streams: a stream created with a cipher (its basin's `stream_cipher` then)
//! keeps every record that is not a command sealed, and only a request carrying its key
//! (`s2-encryption-key`) may append to it or read it. Records are sealed on their way
//! into the engine and opened on their way out, here, so chunks, packs, manifests and
//! index segments only ever hold the sealed form; the key is never stored.
//!
//! A sealed envelope, as S2 frames it:
//!
//! ```text
//! [format: 1 byte] [nonce] [ciphertext of the record's encoded headers and body] [tag: 16 bytes]
//! ```
//!
//! | format | cipher | nonce |
//! |---|---|---|
//! | `0x01` | AEGIS-256 | 32 bytes |
//! | `0x02` | AES-256-GCM | 12 bytes |
//!
//! Every record gets a fresh random nonce from the operating system's generator (never
//! the engine's seeded [`Random`](super::Random): a replayed seed would repeat nonces).
//! The associated data is the stream's id, which is never reused, so a record copied into
//! another stream fails to open. With 96-bit random nonces one AES-256-GCM key is safe for
//! 2³² records, so an AES-256-GCM stream takes records up to seq_num 2³² − 1 (as S2).
//! Command records (fence, trim) stay plaintext, as in S2: the appender applies them.

use aegis::aegis256::Aegis256;
use aes_gcm::{Aes256Gcm, KeyInit, aead::AeadInOut};
use bytes::{BufMut, Bytes, BytesMut};
use s2_common::encryption::{EncryptionAlgorithm, EncryptionKey, EncryptionSpec};
use secrecy::ExposeSecret;

use super::{
    AppendInput, EngineError, EngineResult, InputError,
    chunk::{Chunk, ChunkBuilder, ChunkRecord},
    entries,
    record::SequencedView,
};

const FORMAT_AEGIS256_V1: u8 = 0x01;
const FORMAT_AES256GCM_V1: u8 = 0x02;
const TAG_LEN: usize = 16;

type AesNonce = aes_gcm::aead::Nonce<Aes256Gcm>;
type AesTag = aes_gcm::aead::Tag<Aes256Gcm>;

fn aes_gcm(key: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new_from_slice(key).expect("AES-256 keys are 32 bytes")
}

/// The highest seq_num an AES-256-GCM stream assigns to a sealed record.
pub const AES_GCM_MAX_SEQ_NUM: u64 = (1 << 32) - 1;

fn nonce_len(cipher: EncryptionAlgorithm) -> usize {
    match cipher {
        EncryptionAlgorithm::Aegis256 => 32,
        EncryptionAlgorithm::Aes256Gcm => 12,
    }
}

/// Bytes a sealed envelope adds to its plaintext.
fn overhead(cipher: EncryptionAlgorithm) -> usize {
    1 + nonce_len(cipher) + TAG_LEN
}

/// The message S2 gives for a request without a key to an encrypted stream.
pub fn missing_key(cipher: EncryptionAlgorithm) -> EngineError {
    EngineError::EncryptionKey(format!(
        "missing encryption key for stream cipher '{cipher}'"
    ))
}

/// What a request may do with one stream's records: its cipher with the request's key
/// (or nothing, for a plain stream), bound to the stream's id.
#[derive(Clone)]
pub struct Encryption {
    spec: EncryptionSpec,
    aad: Bytes,
}

impl std::fmt::Debug for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encryption")
            .field("cipher", &self.cipher())
            .finish_non_exhaustive()
    }
}

impl Encryption {
    /// The stream's `cipher` with the request's `key`: a plain stream ignores any key (as
    /// S2 does); an encrypted one needs a key of 32 bytes in base64, else `bad_header`.
    pub fn resolve(
        cipher: Option<EncryptionAlgorithm>,
        key: Option<EncryptionKey>,
        stream_id: &str,
    ) -> EngineResult<Self> {
        let spec = EncryptionSpec::resolve(cipher, key)
            .map_err(|e| EngineError::EncryptionKey(e.to_string()))?;
        Ok(Self {
            spec,
            aad: Bytes::copy_from_slice(stream_id.as_bytes()),
        })
    }

    pub fn cipher(&self) -> Option<EncryptionAlgorithm> {
        match self.spec {
            EncryptionSpec::Plain => None,
            EncryptionSpec::Aegis256(_) => Some(EncryptionAlgorithm::Aegis256),
            EncryptionSpec::Aes256Gcm(_) => Some(EncryptionAlgorithm::Aes256Gcm),
        }
    }

    /// The input with its records sealed; unchanged for a plain stream.
    pub fn seal(&self, mut input: AppendInput) -> AppendInput {
        let Some(cipher) = self.cipher() else {
            return input;
        };
        input.batch = input.batch.sealed(cipher, overhead(cipher), |fields, out| {
            self.seal_into(fields, out)
        });
        input
    }

    /// Appends the envelope of `plaintext` to `out`.
    fn seal_into(&self, plaintext: &[u8], out: &mut BytesMut) {
        let start = out.len();
        match &self.spec {
            EncryptionSpec::Plain => unreachable!("plain streams seal nothing"),
            EncryptionSpec::Aegis256(key) => {
                let nonce: [u8; 32] = rand::random();
                out.put_u8(FORMAT_AEGIS256_V1);
                out.put_slice(&nonce);
                out.put_slice(plaintext);
                let payload = &mut out[start + 33..];
                let tag = Aegis256::<TAG_LEN>::new(key.expose_secret(), &nonce)
                    .encrypt_in_place(payload, &self.aad);
                out.put_slice(&tag);
            }
            EncryptionSpec::Aes256Gcm(key) => {
                let nonce: [u8; 12] = rand::random();
                out.put_u8(FORMAT_AES256GCM_V1);
                out.put_slice(&nonce);
                out.put_slice(plaintext);
                let payload = &mut out[start + 13..];
                let nonce: &AesNonce = nonce.as_slice().try_into().expect("12 bytes");
                let tag = aes_gcm(key.expose_secret())
                    .encrypt_inout_detached(nonce, &self.aad, payload.into())
                    .expect("a record is far below AES-GCM's message limit");
                out.put_slice(&tag);
            }
        }
    }

    /// The plaintext sealed in `envelope`. A wrong key (or a changed envelope) fails
    /// authentication: S2's `decryption_failed`. An envelope of the other cipher, or too
    /// short for one, is stored data gone wrong.
    fn open_envelope(&self, envelope: &[u8]) -> EngineResult<Vec<u8>> {
        let corrupt = |m: &str| EngineError::Corrupt(format!("encrypted record: {m}"));
        let (format, cipher) = match &self.spec {
            EncryptionSpec::Plain => return Err(corrupt("encrypted record on a plain stream")),
            EncryptionSpec::Aegis256(_) => (FORMAT_AEGIS256_V1, EncryptionAlgorithm::Aegis256),
            EncryptionSpec::Aes256Gcm(_) => (FORMAT_AES256GCM_V1, EncryptionAlgorithm::Aes256Gcm),
        };
        match envelope.first().copied() {
            Some(f) if f == format => {}
            Some(FORMAT_AEGIS256_V1 | FORMAT_AES256GCM_V1) => {
                return Err(corrupt("record encryption algorithm mismatch"));
            }
            _ => return Err(corrupt("unknown envelope format")),
        }
        let nonce_end = 1 + nonce_len(cipher);
        if envelope.len() < nonce_end + TAG_LEN {
            return Err(corrupt("envelope too short"));
        }
        let nonce = &envelope[1..nonce_end];
        let (ciphertext, tag) =
            envelope[nonce_end..].split_at(envelope.len() - nonce_end - TAG_LEN);
        let mut plaintext = ciphertext.to_vec();
        let failed = || EngineError::DecryptionFailed("record decryption failed".into());
        match &self.spec {
            EncryptionSpec::Plain => unreachable!("refused above"),
            EncryptionSpec::Aegis256(key) => {
                let nonce: &[u8; 32] = nonce.try_into().expect("sized above");
                let tag: &[u8; TAG_LEN] = tag.try_into().expect("sized above");
                Aegis256::<TAG_LEN>::new(key.expose_secret(), nonce)
                    .decrypt_in_place(&mut plaintext, tag, &self.aad)
                    .map_err(|_| failed())?;
            }
            EncryptionSpec::Aes256Gcm(key) => {
                let nonce: &AesNonce = nonce.try_into().expect("sized above");
                let tag: &AesTag = tag.try_into().expect("sized above");
                aes_gcm(key.expose_secret())
                    .decrypt_inout_detached(nonce, &self.aad, plaintext.as_mut_slice().into(), tag)
                    .map_err(|_| failed())?;
            }
        }
        Ok(plaintext)
    }

    /// `records` (consecutive, of one chunk) opened, as a new plaintext chunk in memory:
    /// the cached chunk stays sealed. `None` for no records. Call it only with a key
    /// ([`Self::cipher`] is some): a plain stream's records are served as they are.
    pub fn open_records<'a>(
        &self,
        records: impl Iterator<Item = ChunkRecord<'a>>,
        capacity: usize,
    ) -> EngineResult<Option<Chunk>> {
        let corrupt = |e: InputError| EngineError::Corrupt(format!("record: {e}"));
        let mut records = records.peekable();
        let Some(first) = records.peek() else {
            return Ok(None);
        };
        let mut chunk = ChunkBuilder::new(first.seq_num, capacity);
        for r in records {
            let view = r.view();
            match view.sealed().map_err(corrupt)? {
                Some(sealed) => {
                    let plaintext = self.open_envelope(sealed.envelope)?;
                    let opened = SequencedView::parse(&plaintext).map_err(corrupt)?;
                    if opened.metered().map_err(corrupt)? != sealed.metered {
                        return Err(EngineError::Corrupt(
                            "decrypted record metered size mismatch".into(),
                        ));
                    }
                    chunk.push(r.timestamp, r.metered, &plaintext);
                }
                None if entries::is_command(&view.parts().map_err(corrupt)?.0) => {
                    chunk.push(r.timestamp, r.metered, view.fields());
                }
                None => {
                    return Err(EngineError::Corrupt(
                        "plaintext record on an encrypted stream".into(),
                    ));
                }
            }
        }
        Ok(Some(chunk.finish()))
    }
}

#[cfg(test)]
mod tests;
