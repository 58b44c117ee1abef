//! Redis ids as commands give them: the forms each command accepts and Redis's errors
//! for the rest. The id type itself is the engine's [`EntryId`].

pub use crate::engine::EntryId;

/// The id of an `XADD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddId {
    /// `*`: the next id, Redis's way (`<now ms>-0`, or the last id's ms with seq + 1).
    Auto,
    /// `<ms>-*`.
    AutoSeq(u64),
    /// `<ms>-<seq>` or `<ms>` (seq 0).
    Exact(EntryId),
}

/// Where `XREAD` starts on one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// `$`: after the key's last entry when the command arrives.
    Last,
    /// After this id.
    After(EntryId),
}

/// Where `XREADGROUP` starts on one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupFrom {
    /// `>`: entries never delivered to the group.
    New,
    /// The consumer's own pending entries after this id.
    After(EntryId),
}

/// The id a group starts at (`XGROUP CREATE`/`SETID`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupStart {
    /// `$`: the key's last id.
    Last,
    Id(EntryId),
}

use super::error::{RedisError, RedisResult};

/// Redis's `string2ull`: a canonical integer (never a negative one), or else whatever
/// C's `strtoull` takes in full: leading white space, one `+` or `-` (which negates,
/// modulo 2^64: `5--1` is `5-18446744073709551615`), leading zeros; no overflow.
pub fn string2ull(text: &[u8]) -> Option<u64> {
    if let Some(n) = canonical_i64(text) {
        return u64::try_from(n).ok();
    }
    let start = text
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
        .unwrap_or(text.len());
    let text = &text[start..];
    let (negative, digits) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(if negative { n.wrapping_neg() } else { n })
}

/// The bytes C sees of an argument: up to its first NUL (Redis compares option words,
/// `*`, `$`, `>`, `~`, `=` and ids as C strings).
pub fn cstr(arg: &[u8]) -> &[u8] {
    arg.iter().position(|&b| b == 0).map_or(arg, |n| &arg[..n])
}

/// Redis's `string2ll`: optional `-`, digits, no leading zeros (but `0`), no `-0`.
pub fn canonical_i64(arg: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(arg).ok()?;
    let digits = text.strip_prefix('-').unwrap_or(text);
    let canonical = !digits.is_empty()
        && digits.len() <= 20
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && text != "-0";
    if !canonical {
        return None;
    }
    text.parse().ok()
}

/// An id as `streamGenericParseIDOrReply` reads it: `-` and `+` (unless `strict`),
/// `<ms>` (seq `missing_seq`), `<ms>-<seq>`, and with `seq_auto` `<ms>-*` (returned as
/// `(id, false)`; `true` means the seq was given).
pub fn parse_id(
    arg: &[u8],
    missing_seq: u64,
    strict: bool,
    seq_auto: bool,
) -> RedisResult<(EntryId, bool)> {
    let invalid = RedisError::invalid_id;
    if arg.len() > 127 {
        return Err(invalid());
    }
    let arg = cstr(arg);
    if arg == b"-" || arg == b"+" {
        if strict {
            return Err(invalid());
        }
        let id = if arg == b"-" {
            EntryId::ZERO
        } else {
            EntryId::MAX
        };
        return Ok((id, true));
    }
    match arg.iter().position(|&b| b == b'-') {
        Some(dash) => {
            let ms = string2ull(&arg[..dash]).ok_or_else(invalid)?;
            let seq_part = &arg[dash + 1..];
            if seq_auto && seq_part == b"*" {
                return Ok((EntryId::new(ms, 0), false));
            }
            let seq = string2ull(seq_part).ok_or_else(invalid)?;
            Ok((EntryId::new(ms, seq), true))
        }
        None => {
            let ms = string2ull(arg).ok_or_else(invalid)?;
            Ok((EntryId::new(ms, missing_seq), true))
        }
    }
}

/// A strict id (no `-` or `+`), seq 0 when missing.
pub fn strict_id(arg: &[u8]) -> RedisResult<EntryId> {
    parse_id(arg, 0, true, false).map(|(id, _)| id)
}

/// An interval bound (`streamParseIntervalIDOrReply`): `(` makes it exclusive (then
/// strict); `missing_seq` fills an `<ms>` alone. Returns the inclusive bound after
/// stepping an exclusive one, with Redis's errors at the extremes.
pub fn interval_bound(arg: &[u8], missing_seq: u64, is_start: bool) -> RedisResult<EntryId> {
    let exclusive = arg.len() > 1 && arg[0] == b'(';
    if !exclusive {
        return parse_id(arg, missing_seq, false, false).map(|(id, _)| id);
    }
    let id = parse_id(&arg[1..], missing_seq, true, false)?.0;
    if is_start {
        id.next()
            .ok_or_else(|| RedisError::err("invalid start ID for the interval"))
    } else {
        id.prev()
            .ok_or_else(|| RedisError::err("invalid end ID for the interval"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_as_redis_reads_them() {
        assert_eq!(strict_id(b"5").unwrap(), EntryId::new(5, 0));
        assert_eq!(strict_id(b"5-3").unwrap(), EntryId::new(5, 3));
        assert_eq!(
            strict_id(b"+5-3").unwrap(),
            EntryId::new(5, 3),
            "strtoull takes +"
        );
        assert_eq!(strict_id(b" 5").unwrap(), EntryId::new(5, 0));
        for bad in [
            &b"-"[..],
            b"+",
            b"5-",
            b"-5",
            b"a",
            b"5-x",
            b"5--1",
            b"",
            b"5-*",
        ] {
            assert_eq!(strict_id(bad), Err(RedisError::invalid_id()), "{bad:?}");
        }
        assert_eq!(
            parse_id(b"5-*", 0, true, true).unwrap(),
            (EntryId::new(5, 0), false)
        );
        assert_eq!(interval_bound(b"-", 0, true).unwrap(), EntryId::ZERO);
        assert_eq!(
            interval_bound(b"5", u64::MAX, false).unwrap(),
            EntryId::new(5, u64::MAX)
        );
        assert_eq!(
            interval_bound(b"(5-3", 0, true).unwrap(),
            EntryId::new(5, 4)
        );
        // The missing seq is filled in first: `(5` as an end is 5-18446744073709551614
        // (redis-server 7.0.15: `XRANGE s - (3` still returns 3-5).
        assert_eq!(
            interval_bound(b"(5", u64::MAX, false).unwrap(),
            EntryId::new(5, u64::MAX - 1)
        );
        assert_eq!(
            interval_bound(b"(0-0", 0, false),
            Err(RedisError::err("invalid end ID for the interval"))
        );
        assert_eq!(
            interval_bound(b"(-", 0, true),
            Err(RedisError::invalid_id())
        );
        assert_eq!(interval_bound(b"(", 0, true), Err(RedisError::invalid_id()));
    }

    /// As redis-server 7.0.15 reads them (checked with `XADD` on a fresh key).
    #[test]
    fn strtoull_leniency() {
        let id = |s: &[u8]| strict_id(s).ok();
        assert_eq!(id(b"08"), Some(EntryId::new(8, 0)));
        assert_eq!(id(b"\t5-\t3"), Some(EntryId::new(5, 3)));
        assert_eq!(id(b"5--05"), Some(EntryId::new(5, u64::MAX - 4)));
        assert_eq!(id(b"5- -1"), Some(EntryId::new(5, u64::MAX)));
        assert_eq!(id(b"5--0"), Some(EntryId::new(5, 0)));
        assert_eq!(id(b"5--18446744073709551615"), Some(EntryId::new(5, 1)));
        assert_eq!(id(b"0-+1"), Some(EntryId::new(0, 1)));
        assert_eq!(id(b"5\0junk"), Some(EntryId::new(5, 0)));
        let mut long = vec![b'0'; 126];
        long.push(b'1');
        assert_eq!(id(&long), Some(EntryId::new(1, 0)));
        long.insert(0, b'0');
        assert_eq!(id(&long), None, "128 bytes is too long");
        for bad in [
            &b"-0"[..],
            b"-010",
            b"5 ",
            b" ",
            b"5- ",
            b"5-+",
            b"5- *",
            b"-5-*",
            b"9-\0x",
            b"0x10",
            b"5.5",
            b"5-3-1",
            b"18446744073709551616",
            b"1-18446744073709551616",
            b"5--18446744073709551616",
        ] {
            assert_eq!(id(bad), None, "{bad:?}");
        }
        assert_eq!(
            parse_id(b"007-*", 0, true, true),
            Ok((EntryId::new(7, 0), false))
        );
        assert_eq!(
            parse_id(b"5-*x", 0, true, true),
            Err(RedisError::invalid_id())
        );
        assert_eq!(parse_id(b"-", 0, false, false), Ok((EntryId::ZERO, true)));
        assert_eq!(parse_id(b"+\0", 0, false, false), Ok((EntryId::MAX, true)));
    }
}
