//! `XACK key group id …`

use bytes::Bytes;

use super::Args;
use crate::redis::error::RedisResult;
use crate::redis::ids::EntryId;

#[derive(Debug, Clone, PartialEq)]
pub struct Xack {
    pub key: Bytes,
    pub group: Bytes,
    /// Ids Redis refuses are an error reported only when the key and group exist.
    pub ids: RedisResult<Vec<EntryId>>,
}

impl Xack {
    pub fn parse(args: &Args) -> RedisResult<Self> {
        super::check_arity(args.name, args.all().len() + 1, -4)?;
        let all = args.all();
        let ids = all[2..]
            .iter()
            .map(|a| crate::redis::ids::strict_id(a))
            .collect::<RedisResult<_>>();
        Ok(Self {
            key: all[0].clone(),
            group: all[1].clone(),
            ids,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::cmd::Command;
    use crate::redis::cmd::testing::{b, err, ok};
    use crate::redis::error::RedisError;

    fn ids(words: &[&str]) -> RedisResult<Vec<EntryId>> {
        match ok(words) {
            Command::Xack(c) => {
                assert_eq!((c.key, c.group), (b("s"), b("g")));
                c.ids
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses() {
        assert_eq!(
            ids(&["XACK", "s", "g", "1-1", "2"]),
            Ok(vec![EntryId::new(1, 1), EntryId::new(2, 0)])
        );
        // A bad id counts only when the key and group exist (Redis replies 0 otherwise).
        assert_eq!(
            ids(&["XACK", "s", "g", "1-1", "+"]),
            Err(RedisError::invalid_id())
        );
        assert_eq!(ids(&["XACK", "s", "g", "x"]), Err(RedisError::invalid_id()));
        assert_eq!(
            err(&["XACK", "s", "g"]),
            "ERR wrong number of arguments for 'xack' command"
        );
    }
}
