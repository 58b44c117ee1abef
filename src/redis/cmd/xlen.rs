//! `XLEN key`

use bytes::Bytes;

use super::Args;
use crate::redis::error::RedisResult;

#[derive(Debug, Clone, PartialEq)]
pub struct Xlen {
    pub key: Bytes,
}

impl Xlen {
    pub fn parse(args: &Args) -> RedisResult<Self> {
        super::check_arity(args.name, args.all().len() + 1, 2)?;
        Ok(Self {
            key: args.all()[0].clone(),
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
        assert_eq!(ok(&["xlen", "s"]), Command::Xlen(Xlen { key: b("s") }));
        assert_eq!(
            err(&["XLEN"]),
            "ERR wrong number of arguments for 'xlen' command"
        );
        assert_eq!(
            err(&["XLEN", "s", "x"]),
            "ERR wrong number of arguments for 'xlen' command"
        );
    }
}
