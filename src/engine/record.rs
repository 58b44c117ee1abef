//! Records on their way in: validation, metering, command records, and a compact batch
//! form that the appender turns into chunk bytes with one copy.
//!
//! A [`RecordBatch`] holds each record's headers and body already encoded as fields 3 and
//! 4 of the protobuf `SequencedRecord`, back to back in one buffer, plus one small
//! [`RecordMeta`] per record. Sequencing a record then only prepends its seq_num and
//! timestamp (fields 1 and 2). Proto input is scanned in place ([`parse_append_input`]);
//! nothing is allocated per record.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::encoding::{decode_varint, encode_varint, encoded_len_varint};

use s2_common::encryption::EncryptionAlgorithm;

use super::entries::EntryId;

/// At most this many records in one append batch.
pub const MAX_APPEND_RECORDS: usize = 1000;
/// At most this many metered bytes in one append batch, and in one record.
pub const MAX_APPEND_BYTES: usize = 1024 * 1024;
/// Fencing tokens are at most this many bytes of UTF-8.
pub const MAX_FENCING_TOKEN_BYTES: usize = 36;

/// S2's metered size of a record: 8 bytes, plus 2 per header, plus every header name and
/// value, plus the body. Sequence number and timestamp are not counted.
pub fn metered_size(header_count: usize, header_bytes: usize, body_len: usize) -> usize {
    8 + 2 * header_count + header_bytes + body_len
}

/// A command record's effect on the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Set the fencing token for batches after the one carrying this record.
    Fence(String),
    /// Make records with seq_num below this point unreadable (capped at the record's own
    /// seq_num + 1; never moves backwards).
    Trim(u64),
}

/// Per-record facts the appender needs without looking at the payload.
#[derive(Debug, Clone)]
pub struct RecordMeta {
    /// End offset of this record's encoded headers and body in [`RecordBatch::payload`].
    end: u32,
    /// Client-supplied timestamp, if any.
    pub timestamp: Option<u64>,
    pub metered: u32,
    pub command: Option<Command>,
    /// The id an entry written by the Redis surface carries in its id header
    /// ([`super::entries`]); `None` for every other record.
    pub carried_id: Option<EntryId>,
}

/// A validated, non-empty batch of at most 1000 records and 1 MiB metered.
#[derive(Debug, Clone)]
pub struct RecordBatch {
    payload: Bytes,
    records: Vec<RecordMeta>,
    metered: usize,
    /// The cipher its records were sealed with ([`Self::sealed`]), `None` while they are
    /// plaintext. An encrypted stream accepts only batches sealed with its cipher.
    cipher: Option<EncryptionAlgorithm>,
}

impl RecordBatch {
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn metered_bytes(&self) -> usize {
        self.metered
    }

    pub fn records(&self) -> &[RecordMeta] {
        &self.records
    }

    /// The encoded headers and body (fields 3 and 4 of `SequencedRecord`) of each record.
    pub fn encoded_records(&self) -> impl Iterator<Item = (&RecordMeta, &[u8])> {
        let mut start = 0usize;
        self.records.iter().map(move |meta| {
            let end = meta.end as usize;
            let slice = &self.payload[start..end];
            start = end;
            (meta, slice)
        })
    }

    pub fn payload_len(&self) -> usize {
        self.payload.len()
    }

    pub fn cipher(&self) -> Option<EncryptionAlgorithm> {
        self.cipher
    }

    /// The batch with every record that is not a command stored sealed: its encoded
    /// fields replaced by the envelope `seal` appends to the buffer (exactly `overhead`
    /// bytes more than the fields), after the record's plaintext metered size (see
    /// [`SequencedView::sealed`]). Timestamps, metering and commands stay as they were,
    /// so limits and accounting do not depend on the cipher. Command records stay
    /// plaintext: the stream's fencing token and trim point are applied from them.
    pub fn sealed(
        &self,
        cipher: EncryptionAlgorithm,
        overhead: usize,
        mut seal: impl FnMut(&[u8], &mut BytesMut),
    ) -> RecordBatch {
        let mut payload =
            BytesMut::with_capacity(self.payload.len() + self.records.len() * (overhead + 2 * 10));
        let mut records = Vec::with_capacity(self.records.len());
        for (meta, fields) in self.encoded_records() {
            if meta.command.is_some() {
                payload.put_slice(fields);
            } else {
                payload.put_u8(SEALED_METERED_KEY);
                encode_varint(u64::from(meta.metered), &mut payload);
                payload.put_u8(0x22);
                encode_varint((fields.len() + overhead) as u64, &mut payload);
                let before = payload.len();
                seal(fields, &mut payload);
                assert_eq!(payload.len() - before, fields.len() + overhead);
            }
            records.push(RecordMeta {
                end: u32::try_from(payload.len()).expect("a batch is far below 4 GiB"),
                ..meta.clone()
            });
        }
        RecordBatch {
            payload: payload.freeze(),
            records,
            metered: self.metered,
            cipher: Some(cipher),
        }
    }
}

/// Key of field 5 (varint) of a stored `SequencedRecord`, which S2's protobuf does not
/// have and no client ever receives: a sealed record's plaintext metered size. A record
/// with it holds its sealed envelope as its body and no headers.
const SEALED_METERED_KEY: u8 = 0x28;

/// A sealed record as stored ([`RecordBatch::sealed`]).
#[derive(Debug, Clone, Copy)]
pub struct Sealed<'a> {
    /// The metered size of the plaintext record.
    pub metered: usize,
    pub envelope: &'a [u8],
}

/// Why input was refused. `Malformed` input is a protocol error (`bad_proto`); `Invalid`
/// input is well-formed but breaks a rule (`invalid`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> InputError {
    InputError::Invalid(msg.into())
}

/// Builds a [`RecordBatch`] record by record, validating as it goes.
pub struct RecordBatchBuilder {
    payload: BytesMut,
    records: Vec<RecordMeta>,
    metered: usize,
}

impl Default for RecordBatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl RecordBatchBuilder {
    pub fn new() -> Self {
        Self::with_capacity(0, 0)
    }

    pub fn with_capacity(records: usize, bytes: usize) -> Self {
        Self {
            payload: BytesMut::with_capacity(bytes),
            records: Vec::with_capacity(records),
            metered: 0,
        }
    }

    /// Adds one record. `headers` are (name, value) pairs in order.
    pub fn push<'a>(
        &mut self,
        timestamp: Option<u64>,
        headers: impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
        body: &[u8],
    ) -> Result<(), InputError> {
        if self.records.len() >= MAX_APPEND_RECORDS {
            return Err(invalid("record batch must not exceed 1000 records"));
        }
        let (mut count, mut header_bytes, mut empty_names) = (0usize, 0usize, 0usize);
        for (name, value) in headers.clone() {
            count += 1;
            header_bytes += name.len() + value.len();
            empty_names += usize::from(name.is_empty());
        }
        let metered = metered_size(count, header_bytes, body.len());
        if metered > MAX_APPEND_BYTES {
            return Err(invalid("record must have metered size less than 1 MiB"));
        }
        if self.metered + metered > MAX_APPEND_BYTES {
            return Err(invalid(
                "record batch must not exceed a metered size of 1 MiB",
            ));
        }
        let command = match (count, empty_names) {
            (_, 0) => None,
            (1, 1) => {
                let (_, op) = headers.clone().next().expect("one header");
                Some(parse_command(op, body)?)
            }
            _ => return Err(invalid("invalid header: empty name")),
        };

        for (name, value) in headers {
            let inner = field_len(name.len()) + field_len(value.len());
            self.payload.put_u8(0x1a);
            encode_varint(inner as u64, &mut self.payload);
            put_bytes_field(&mut self.payload, 0x0a, name);
            put_bytes_field(&mut self.payload, 0x12, value);
        }
        put_bytes_field(&mut self.payload, 0x22, body);

        let end = u32::try_from(self.payload.len())
            .map_err(|_| invalid("record batch must not exceed a metered size of 1 MiB"))?;
        self.metered += metered;
        self.records.push(RecordMeta {
            end,
            timestamp,
            metered: metered as u32,
            command,
            carried_id: None,
        });
        Ok(())
    }

    /// Adds one entry of the Redis surface: its fields as headers, after an id header
    /// ([`super::entries`]) when it carries `id` or a field name is empty. No body.
    pub fn push_entry(
        &mut self,
        id: Option<EntryId>,
        fields: &[(&[u8], &[u8])],
    ) -> Result<(), InputError> {
        if fields.is_empty() {
            return Err(invalid("an entry needs at least one field"));
        }
        if self.records.len() >= MAX_APPEND_RECORDS {
            return Err(invalid("record batch must not exceed 1000 records"));
        }
        let id_text = id.map(|id| id.to_string()).unwrap_or_default();
        let with_header = id.is_some() || fields.iter().any(|(n, _)| n.is_empty());
        let header: Option<(&[u8], &[u8])> = with_header.then_some((&b""[..], id_text.as_bytes()));
        let headers: Vec<(&[u8], &[u8])> =
            header.into_iter().chain(fields.iter().copied()).collect();
        let header_bytes: usize = headers.iter().map(|(n, v)| n.len() + v.len()).sum();
        let metered = metered_size(headers.len(), header_bytes, 0);
        if metered > MAX_APPEND_BYTES || self.metered + metered > MAX_APPEND_BYTES {
            return Err(invalid("record must have metered size less than 1 MiB"));
        }
        for (name, value) in &headers {
            let inner = field_len(name.len()) + field_len(value.len());
            self.payload.put_u8(0x1a);
            encode_varint(inner as u64, &mut self.payload);
            put_bytes_field(&mut self.payload, 0x0a, name);
            put_bytes_field(&mut self.payload, 0x12, value);
        }
        let end = u32::try_from(self.payload.len())
            .map_err(|_| invalid("record batch must not exceed a metered size of 1 MiB"))?;
        self.metered += metered;
        self.records.push(RecordMeta {
            end,
            timestamp: None,
            metered: metered as u32,
            command: None,
            carried_id: id,
        });
        Ok(())
    }

    pub fn finish(self) -> Result<RecordBatch, InputError> {
        if self.records.is_empty() {
            return Err(invalid("record batch must not be empty"));
        }
        Ok(RecordBatch {
            payload: self.payload.freeze(),
            records: self.records,
            metered: self.metered,
            cipher: None,
        })
    }
}

fn parse_command(op: &[u8], body: &[u8]) -> Result<Command, InputError> {
    match op {
        b"fence" => {
            let token = std::str::from_utf8(body)
                .map_err(|_| invalid("invalid `fence` command: fencing token is not UTF-8"))?;
            if token.len() > MAX_FENCING_TOKEN_BYTES {
                return Err(invalid(format!(
                    "invalid `fence` command: fencing token must not exceed {MAX_FENCING_TOKEN_BYTES} bytes"
                )));
            }
            Ok(Command::Fence(token.to_owned()))
        }
        b"trim" => {
            let point: [u8; 8] = body.try_into().map_err(|_| {
                invalid("invalid `trim` command: trim point must be an 8-byte big-endian seq_num")
            })?;
            Ok(Command::Trim(u64::from_be_bytes(point)))
        }
        _ => Err(invalid("unknown command")),
    }
}

/// Validates a fencing token given as an append condition.
pub fn validate_fencing_token(token: &str) -> Result<(), InputError> {
    if token.len() > MAX_FENCING_TOKEN_BYTES {
        return Err(invalid(format!(
            "fencing token must not exceed {MAX_FENCING_TOKEN_BYTES} bytes"
        )));
    }
    Ok(())
}

/// Encoded size of a non-repeated bytes field with a one-byte tag (omitted when empty).
fn field_len(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        1 + encoded_len_varint(len as u64) + len
    }
}

fn put_bytes_field(buf: &mut BytesMut, tag: u8, bytes: &[u8]) {
    if !bytes.is_empty() {
        buf.put_u8(tag);
        encode_varint(bytes.len() as u64, buf);
        buf.put_slice(bytes);
    }
}

/// An append batch with its conditions.
#[derive(Debug, Clone)]
pub struct AppendInput {
    pub batch: RecordBatch,
    pub match_seq_num: Option<u64>,
    pub fencing_token: Option<String>,
}

/// Protobuf wire types.
const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LEN: u64 = 2;
const FIXED32: u64 = 5;

fn malformed(msg: impl Into<String>) -> InputError {
    InputError::Malformed(msg.into())
}

/// A field's key: its number and wire type. Field numbers are at most 2^29 − 1, so a key
/// above `u32::MAX` is refused, as protobuf decoders (prost included) refuse it: what
/// passes here must also decode in a client.
fn read_key(buf: &mut &[u8]) -> Result<(u64, u64), InputError> {
    let key = decode_varint(buf).map_err(|e| malformed(e.to_string()))?;
    if key > u64::from(u32::MAX) {
        return Err(malformed(format!("invalid field key {key}")));
    }
    let (field, wire) = (key >> 3, key & 7);
    if field == 0 {
        return Err(malformed("invalid field number 0"));
    }
    Ok((field, wire))
}

/// A `SequencedRecord` field after the headers and body: seq_num and timestamp come first
/// ([`put_sequenced`] writes them so). One repeated later would be what a client decodes
/// (the last value of a field wins), not what the chunk was checked against, and one with
/// another wire type would not decode at all.
fn position_after_fields() -> InputError {
    malformed("seq_num or timestamp after the record's headers or body")
}

fn read_varint(buf: &mut &[u8]) -> Result<u64, InputError> {
    decode_varint(buf).map_err(|e| malformed(e.to_string()))
}

fn read_len<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], InputError> {
    let len = read_varint(buf)? as usize;
    if len > buf.len() {
        return Err(malformed("length-delimited field overruns the message"));
    }
    let (head, tail) = buf.split_at(len);
    *buf = tail;
    Ok(head)
}

fn skip(buf: &mut &[u8], wire: u64) -> Result<(), InputError> {
    let n = match wire {
        VARINT => {
            read_varint(buf)?;
            return Ok(());
        }
        FIXED64 => 8,
        LEN => {
            read_len(buf)?;
            return Ok(());
        }
        FIXED32 => 4,
        other => return Err(malformed(format!("unsupported wire type {other}"))),
    };
    if buf.len() < n {
        return Err(malformed("truncated fixed-width field"));
    }
    buf.advance(n);
    Ok(())
}

fn expect_wire(wire: u64, want: u64) -> Result<(), InputError> {
    if wire == want {
        Ok(())
    } else {
        Err(malformed(format!(
            "wire type {wire} where {want} was expected"
        )))
    }
}

/// Decodes a protobuf `AppendInput` (`s2.v1`) straight into a [`RecordBatch`].
pub fn parse_append_input(mut buf: &[u8]) -> Result<AppendInput, InputError> {
    let mut builder = RecordBatchBuilder::with_capacity(16, buf.len());
    let mut headers: Vec<(&[u8], &[u8])> = Vec::new();
    let (mut match_seq_num, mut fencing_token) = (None, None);
    let mut first_error: Option<InputError> = None;
    while !buf.is_empty() {
        let (field, wire) = read_key(&mut buf)?;
        match field {
            1 => {
                expect_wire(wire, LEN)?;
                let record = read_len(&mut buf)?;
                let (timestamp, body) = parse_append_record(record, &mut headers)?;
                if first_error.is_none()
                    && let Err(e) = builder.push(timestamp, headers.iter().copied(), body)
                {
                    // Keep scanning: a malformed message must be reported as such even when
                    // an earlier record already broke a rule.
                    first_error = Some(e);
                }
            }
            2 => {
                expect_wire(wire, VARINT)?;
                match_seq_num = Some(read_varint(&mut buf)?);
            }
            3 => {
                expect_wire(wire, LEN)?;
                let token = std::str::from_utf8(read_len(&mut buf)?)
                    .map_err(|_| malformed("fencing_token is not UTF-8"))?;
                fencing_token = Some(token.to_owned());
            }
            _ => skip(&mut buf, wire)?,
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    if let Some(token) = &fencing_token {
        validate_fencing_token(token)?;
    }
    Ok(AppendInput {
        batch: builder.finish()?,
        match_seq_num,
        fencing_token,
    })
}

/// Scans one `AppendRecord`, leaving its headers in `headers` (cleared first).
fn parse_append_record<'a>(
    mut buf: &'a [u8],
    headers: &mut Vec<(&'a [u8], &'a [u8])>,
) -> Result<(Option<u64>, &'a [u8]), InputError> {
    headers.clear();
    let (mut timestamp, mut body): (Option<u64>, &[u8]) = (None, &[]);
    while !buf.is_empty() {
        let (field, wire) = read_key(&mut buf)?;
        match field {
            1 => {
                expect_wire(wire, VARINT)?;
                timestamp = Some(read_varint(&mut buf)?);
            }
            2 => {
                expect_wire(wire, LEN)?;
                headers.push(parse_header(read_len(&mut buf)?)?);
            }
            3 => {
                expect_wire(wire, LEN)?;
                body = read_len(&mut buf)?;
            }
            _ => skip(&mut buf, wire)?,
        }
    }
    Ok((timestamp, body))
}

fn parse_header(mut buf: &[u8]) -> Result<(&[u8], &[u8]), InputError> {
    let (mut name, mut value): (&[u8], &[u8]) = (&[], &[]);
    while !buf.is_empty() {
        let (field, wire) = read_key(&mut buf)?;
        match field {
            1 => {
                expect_wire(wire, LEN)?;
                name = read_len(&mut buf)?;
            }
            2 => {
                expect_wire(wire, LEN)?;
                value = read_len(&mut buf)?;
            }
            _ => skip(&mut buf, wire)?,
        }
    }
    Ok((name, value))
}

/// A record's headers, as (name, value) pairs in order, and its body.
pub type RecordParts<'a> = (Vec<(&'a [u8], &'a [u8])>, &'a [u8]);

/// A sequenced record as stored in a chunk: the bytes of one protobuf `SequencedRecord`.
#[derive(Debug, Clone, Copy)]
pub struct SequencedView<'a> {
    pub seq_num: u64,
    pub timestamp: u64,
    /// Fields 3 (headers) and 4 (body) of the encoded record.
    fields: &'a [u8],
}

impl<'a> SequencedView<'a> {
    /// Parses a `SequencedRecord` message.
    pub fn parse(mut buf: &'a [u8]) -> Result<Self, InputError> {
        let (mut seq_num, mut timestamp) = (0, 0);
        let fields_start = loop {
            if buf.is_empty() {
                break buf;
            }
            let before = buf;
            let (field, wire) = read_key(&mut buf)?;
            match field {
                1 => {
                    expect_wire(wire, VARINT)?;
                    seq_num = read_varint(&mut buf)?;
                }
                2 => {
                    expect_wire(wire, VARINT)?;
                    timestamp = read_varint(&mut buf)?;
                }
                _ => break before,
            }
        };
        Ok(Self {
            seq_num,
            timestamp,
            fields: fields_start,
        })
    }

    /// Headers in order, then the body; a sealed record has no headers and its envelope
    /// for a body.
    pub fn parts(&self) -> Result<RecordParts<'a>, InputError> {
        if let Some(sealed) = self.sealed()? {
            return Ok((Vec::new(), sealed.envelope));
        }
        let mut buf = self.fields;
        let mut headers = Vec::new();
        let mut body: &[u8] = &[];
        while !buf.is_empty() {
            let (field, wire) = read_key(&mut buf)?;
            match field {
                3 => {
                    expect_wire(wire, LEN)?;
                    headers.push(parse_header(read_len(&mut buf)?)?);
                }
                4 => {
                    expect_wire(wire, LEN)?;
                    body = read_len(&mut buf)?;
                }
                1 | 2 => return Err(position_after_fields()),
                _ => skip(&mut buf, wire)?,
            }
        }
        Ok((headers, body))
    }

    /// The encoded fields after seq_num and timestamp: headers and body, or what a
    /// sealed record keeps instead.
    pub fn fields(&self) -> &'a [u8] {
        self.fields
    }

    /// Metered size, computed from the encoded fields; a sealed record's is the one it
    /// carries, its plaintext's.
    pub fn metered(&self) -> Result<usize, InputError> {
        if let Some(sealed) = self.sealed()? {
            return Ok(sealed.metered);
        }
        let mut buf = self.fields;
        let (mut count, mut bytes, mut body) = (0usize, 0usize, 0usize);
        while !buf.is_empty() {
            let (field, wire) = read_key(&mut buf)?;
            match field {
                3 => {
                    expect_wire(wire, LEN)?;
                    let (name, value) = parse_header(read_len(&mut buf)?)?;
                    count += 1;
                    bytes += name.len() + value.len();
                }
                4 => {
                    expect_wire(wire, LEN)?;
                    body = read_len(&mut buf)?.len();
                }
                1 | 2 => return Err(position_after_fields()),
                _ => skip(&mut buf, wire)?,
            }
        }
        Ok(metered_size(count, bytes, body))
    }

    /// The record's sealed form, if it is stored sealed ([`RecordBatch::sealed`]).
    pub fn sealed(&self) -> Result<Option<Sealed<'a>>, InputError> {
        if self.fields.first() != Some(&SEALED_METERED_KEY) {
            return Ok(None);
        }
        let mut buf = &self.fields[1..];
        let metered = read_varint(&mut buf)?;
        if metered > MAX_APPEND_BYTES as u64 {
            return Err(malformed(
                "a sealed record's metered size is beyond a record's",
            ));
        }
        let (field, wire) = read_key(&mut buf)?;
        if field != 4 {
            return Err(malformed("a sealed record holds only its envelope"));
        }
        expect_wire(wire, LEN)?;
        let envelope = read_len(&mut buf)?;
        if !buf.is_empty() {
            return Err(malformed("a sealed record holds only its envelope"));
        }
        Ok(Some(Sealed {
            metered: metered as usize,
            envelope,
        }))
    }
}

/// Appends one `ReadBatch.records` entry (field 1) holding a `SequencedRecord` with the
/// given position and pre-encoded headers and body.
pub fn put_sequenced(buf: &mut impl BufMut, seq_num: u64, timestamp: u64, fields: &[u8]) {
    let inner = 1 + encoded_len_varint(seq_num) + 1 + encoded_len_varint(timestamp) + fields.len();
    buf.put_u8(0x0a);
    encode_varint(inner as u64, buf);
    buf.put_u8(0x08);
    encode_varint(seq_num, buf);
    buf.put_u8(0x10);
    encode_varint(timestamp, buf);
    buf.put_slice(fields);
}

/// Size of the entry [`put_sequenced`] writes.
#[cfg(test)]
fn sequenced_len(seq_num: u64, timestamp: u64, fields_len: usize) -> usize {
    let inner = 1 + encoded_len_varint(seq_num) + 1 + encoded_len_varint(timestamp) + fields_len;
    1 + encoded_len_varint(inner as u64) + inner
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use prost::Message;
    use s2_api::v1::stream::proto;

    use super::*;

    fn proto_record(
        ts: Option<u64>,
        headers: &[(&[u8], &[u8])],
        body: &[u8],
    ) -> proto::AppendRecord {
        proto::AppendRecord {
            timestamp: ts,
            headers: headers
                .iter()
                .map(|(n, v)| proto::Header {
                    name: Bytes::copy_from_slice(n),
                    value: Bytes::copy_from_slice(v),
                })
                .collect(),
            body: Bytes::copy_from_slice(body),
        }
    }

    fn encode(records: Vec<proto::AppendRecord>) -> Vec<u8> {
        proto::AppendInput {
            records,
            match_seq_num: Some(7),
            fencing_token: Some("tok".into()),
        }
        .encode_to_vec()
    }

    #[test]
    fn parses_records_headers_and_conditions() {
        let bytes = encode(vec![
            proto_record(Some(5), &[(b"k", b"v"), (b"k2", b"")], b"hello"),
            proto_record(None, &[], b""),
        ]);
        let input = parse_append_input(&bytes).unwrap();
        assert_eq!(input.match_seq_num, Some(7));
        assert_eq!(input.fencing_token.as_deref(), Some("tok"));
        assert_eq!(input.batch.len(), 2);
        assert_eq!(
            input.batch.metered_bytes(),
            metered_size(2, 4, 5) + metered_size(0, 0, 0)
        );
        let recs: Vec<_> = input.batch.encoded_records().collect();
        assert_eq!(recs[0].0.timestamp, Some(5));
        assert_eq!(recs[1].0.timestamp, None);

        // Sequencing produces a valid SequencedRecord that prost agrees with.
        let mut out = BytesMut::new();
        put_sequenced(&mut out, 42, 9, recs[0].1);
        assert_eq!(out.len(), sequenced_len(42, 9, recs[0].1.len()));
        let batch = proto::ReadBatch::decode(out.freeze()).unwrap();
        let rec = &batch.records[0];
        assert_eq!((rec.seq_num, rec.timestamp), (42, 9));
        assert_eq!(rec.headers.len(), 2);
        assert_eq!(&rec.headers[0].name[..], b"k");
        assert_eq!(&rec.headers[1].name[..], b"k2");
        assert_eq!(&rec.body[..], b"hello");

        let mut out = BytesMut::new();
        put_sequenced(&mut out, 0, 0, recs[0].1);
        let view = SequencedView::parse(&out[2..]).unwrap();
        assert_eq!(view.metered().unwrap(), metered_size(2, 4, 5));
        let (headers, body) = view.parts().unwrap();
        assert_eq!(
            headers,
            vec![(&b"k"[..], &b"v"[..]), (&b"k2"[..], &b""[..])]
        );
        assert_eq!(body, b"hello");
    }

    #[test]
    fn command_records_are_recognised_and_checked() {
        let fence = encode(vec![proto_record(None, &[(b"", b"fence")], b"new-token")]);
        let input = parse_append_input(&fence).unwrap();
        assert_eq!(
            input.batch.records()[0].command,
            Some(Command::Fence("new-token".into()))
        );
        assert_eq!(input.batch.metered_bytes(), 8 + 2 + 5 + 9);

        let trim = encode(vec![proto_record(
            None,
            &[(b"", b"trim")],
            &9u64.to_be_bytes(),
        )]);
        let input = parse_append_input(&trim).unwrap();
        assert_eq!(input.batch.records()[0].command, Some(Command::Trim(9)));
        assert_eq!(input.batch.metered_bytes(), 8 + 2 + 4 + 8);

        for (headers, body) in [
            (vec![(&b""[..], &b"trim"[..])], &b"short"[..]),
            (vec![(&b""[..], &b"nope"[..])], &b""[..]),
            (
                vec![(&b""[..], &b"fence"[..]), (&b"a"[..], &b"b"[..])],
                &b""[..],
            ),
            (vec![(&b""[..], &b"fence"[..])], &[b'x'; 37][..]),
            (
                vec![(&b"a"[..], &b"b"[..]), (&b""[..], &b"x"[..])],
                &b""[..],
            ),
        ] {
            let bytes = encode(vec![proto_record(None, &headers, body)]);
            assert!(
                matches!(parse_append_input(&bytes), Err(InputError::Invalid(_))),
                "{headers:?}"
            );
        }
    }

    #[test]
    fn enforces_batch_limits() {
        let empty = encode(vec![]);
        assert_eq!(
            parse_append_input(&empty).unwrap_err(),
            InputError::Invalid("record batch must not be empty".into())
        );
        let many = encode((0..1001).map(|_| proto_record(None, &[], b"x")).collect());
        assert!(matches!(
            parse_append_input(&many),
            Err(InputError::Invalid(_))
        ));
        let exact = encode((0..1000).map(|_| proto_record(None, &[], b"x")).collect());
        assert_eq!(parse_append_input(&exact).unwrap().batch.len(), 1000);

        // 1 MiB metered exactly fits; one byte more does not.
        let body = vec![0u8; MAX_APPEND_BYTES - 8];
        let fits = encode(vec![proto_record(None, &[], &body)]);
        assert!(parse_append_input(&fits).is_ok());
        let body = vec![0u8; MAX_APPEND_BYTES - 7];
        let over = encode(vec![proto_record(None, &[], &body)]);
        assert!(matches!(
            parse_append_input(&over),
            Err(InputError::Invalid(_))
        ));
    }

    #[test]
    fn malformed_protobuf_is_malformed_not_invalid() {
        for bytes in [
            &[0x0a, 0x05, 0x01][..], // length overruns
            &[0xff, 0xff, 0xff][..], // truncated varint key
            &[0x0b][..],             // start-group wire type
            &[0x08, 0x01, 0x00][..], // field number 0
            // Key 2^32 + 2: field number 2^29, beyond protobuf's; prost refuses it.
            &[0x82, 0x80, 0x80, 0x80, 0x10, 0x00][..],
        ] {
            assert!(
                matches!(parse_append_input(bytes), Err(InputError::Malformed(_))),
                "{bytes:?}"
            );
        }
    }
}
