//! `XDEL key id …`

use bytes::Bytes;

use super::Args;
use crate::redis::error::RedisResult;
use crate::redis::ids::EntryId;

#[derive(Debug, Clone, PartialEq)]
pub struct Xdel {
    pub key: Bytes,
    /// Ids Redis refuses are an error only when the key exists (a missing key is 0).
    pub ids: RedisResult<Vec<EntryId>>,
}

impl Xdel {
    pub fn parse(args: &Args) -> RedisResult<Self> {
        super::check_arity(args.name, args.all().len() + 1, -3)?;
        let all = args.all();
        let ids = all[1..]
            .iter()
            .map(|a| crate::redis::ids::strict_id(a))
            .collect::<RedisResult<_>>();
        Ok(Self {
            key: all[0].clone(),
            ids,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::cmd::Command;
    use crate::redis::cmd::testing::{b, err, ok};

    #[test]
    fn parses() {
        assert_eq!(
            ok(&["XDEL", "s", "1-1", "2", " 3-+4"]),
            Command::Xdel(Xdel {
                key: b("s"),
                ids: Ok(vec![
                    EntryId::new(1, 1),
                    EntryId::new(2, 0),
                    EntryId::new(3, 4)
                ]),
            })
        );
    }

    /// Checked against redis-server 7.0.15 on an existing key (on a missing one Redis
    /// replies 0 whatever the ids, so id errors wait for the key).
    #[test]
    fn errors_as_redis() {
        assert_eq!(
            err(&["XDEL", "s"]),
            "ERR wrong number of arguments for 'xdel' command"
        );
        for words in [
            &["XDEL", "s", "x"][..],
            &["XDEL", "s", "9-9", "x"],
            &["XDEL", "s", "-"],
        ] {
            let Command::Xdel(c) = ok(words) else {
                panic!("not an XDEL")
            };
            assert_eq!(
                c.ids,
                Err(crate::redis::RedisError::invalid_id()),
                "{words:?}"
            );
        }
    }
}
