//! Fuzz properties of the stream commands' parser (see `crate::fuzzing`): whatever the
//! arguments, a command parses or is refused with a message; it never panics. Argument
//! lists are the commands' own words and numbers at their edges, arbitrary bytes, and
//! valid command lines with words replaced, removed, repeated or added.

use proptest::{prelude::*, sample::Index};

use super::*;
use crate::fuzzing;

/// Words the parsers look for, and numbers and ids at the edges of their ranges.
const WORDS: &[&str] = &[
    "*",
    "$",
    ">",
    "-",
    "+",
    "(",
    "~",
    "=",
    "0",
    "-1",
    "0-0",
    "0-1",
    "1-*",
    "(0-0",
    "(1-1",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "18446744073709551615",
    "18446744073709551615-18446744073709551615",
    "18446744073709551616-0",
    "COUNT",
    "BLOCK",
    "STREAMS",
    "GROUP",
    "MAXLEN",
    "MINID",
    "LIMIT",
    "NOMKSTREAM",
    "NOACK",
    "IDLE",
    "TIME",
    "RETRYCOUNT",
    "FORCE",
    "JUSTID",
    "LASTID",
    "FULL",
    "CREATE",
    "SETID",
    "DESTROY",
    "CREATECONSUMER",
    "DELCONSUMER",
    "MKSTREAM",
    "ENTRIESREAD",
    "HELP",
    "STREAM",
    "GROUPS",
    "CONSUMERS",
];

/// Valid command lines, one or more per command.
const LINES: &[&str] = &[
    "XADD s * f v",
    "XADD s NOMKSTREAM MAXLEN ~ 5 LIMIT 9 7-* f v",
    "XADD s MINID = 3 1-1 f v f2 v2",
    "XLEN s",
    "XRANGE s - + COUNT 5",
    "XREVRANGE s + (1-1 COUNT 1",
    "XREAD COUNT 2 BLOCK 0 STREAMS s t 0 $",
    "XTRIM s MAXLEN ~ 10 LIMIT 5",
    "XTRIM s MINID 1-1",
    "XDEL s 1-1 2-2",
    "XINFO STREAM s FULL COUNT 3",
    "XINFO GROUPS s",
    "XINFO CONSUMERS s g",
    "XGROUP CREATE s g $ MKSTREAM ENTRIESREAD 3",
    "XGROUP SETID s g 0 ENTRIESREAD -1",
    "XGROUP DESTROY s g",
    "XGROUP CREATECONSUMER s g c",
    "XGROUP DELCONSUMER s g c",
    "XREADGROUP GROUP g c COUNT 1 BLOCK 10 NOACK STREAMS s >",
    "XACK s g 1-1",
    "XPENDING s g IDLE 10 - + 5 c",
    "XPENDING s g",
    "XCLAIM s g c 10 1-1 IDLE 5 TIME 3 RETRYCOUNT 2 FORCE JUSTID LASTID 1-1",
    "XAUTOCLAIM s g c 10 0-0 COUNT 5 JUSTID",
];

/// An argument: a known word, a number or id shape, text, or arbitrary bytes.
fn arg() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        4 => prop::sample::select(WORDS).prop_map(|w| Bytes::from_static(w.as_bytes())),
        2 => "[0-9]{1,20}(-[0-9*]{1,20})?".prop_map(Bytes::from),
        1 => "\\PC{0,6}".prop_map(Bytes::from),
        1 => prop::collection::vec(any::<u8>(), 0..8).prop_map(Bytes::from),
    ]
}

/// A command's name in any case (or not a stream command at all).
fn name() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        8 => (prop::sample::select(NAMES.to_vec()), any::<u64>()).prop_map(|(n, case)| {
            n.bytes()
                .enumerate()
                .map(|(i, b)| if case >> (i % 64) & 1 == 1 { b.to_ascii_lowercase() } else { b })
                .collect::<Vec<u8>>()
                .into()
        }),
        1 => prop::collection::vec(any::<u8>(), 0..8).prop_map(Bytes::from),
    ]
}

/// Parses `argv`: a command, or an error whose text is there to show.
fn parses_or_says_why(argv: &[Bytes]) -> Result<(), TestCaseError> {
    if let Err(e) = parse(argv) {
        prop_assert!(
            !e.message().is_empty(),
            "{:?} refused without a message",
            argv
        );
        prop_assert!(!e.code().is_empty());
    }
    Ok(())
}

/// One change to a command line.
#[derive(Debug, Clone)]
enum Edit {
    Replace(Index, Bytes),
    Remove(Index),
    Repeat(Index),
    Insert(Index, Bytes),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        3 => (any::<Index>(), arg()).prop_map(|(i, a)| Edit::Replace(i, a)),
        1 => any::<Index>().prop_map(Edit::Remove),
        1 => any::<Index>().prop_map(Edit::Repeat),
        2 => (any::<Index>(), arg()).prop_map(|(i, a)| Edit::Insert(i, a)),
    ];
    prop::collection::vec(edit, 1..4)
}

/// Applies `edits` to the arguments after the name (and the subcommand, for
/// XGROUP/XINFO, half the time: `keep` words stay).
fn edited(line: &str, edits: &[Edit], keep: usize) -> Vec<Bytes> {
    let mut argv: Vec<Bytes> = line
        .split(' ')
        .map(|w| Bytes::copy_from_slice(w.as_bytes()))
        .collect();
    for e in edits {
        let args = argv.len() - keep;
        match e {
            Edit::Replace(i, a) if args > 0 => argv[keep + i.index(args)] = a.clone(),
            Edit::Remove(i) if args > 0 => {
                argv.remove(keep + i.index(args));
            }
            Edit::Repeat(i) if args > 0 => {
                let at = keep + i.index(args);
                argv.insert(at, argv[at].clone());
            }
            Edit::Insert(i, a) => argv.insert(keep + i.index(args + 1), a.clone()),
            _ => {}
        }
    }
    argv
}

proptest! {
    #![proptest_config(fuzzing::config(4000))]

    /// The commands' own words in any order.
    #[test]
    fn fuzz_redis_arbitrary_arguments(name in name(), args in prop::collection::vec(arg(), 0..12)) {
        let mut argv = vec![name];
        argv.extend(args);
        parses_or_says_why(&argv)?;
    }

    #[test]
    fn fuzz_redis_arbitrary_bytes(
        argv in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..24).prop_map(Bytes::from), 0..8),
    ) {
        parses_or_says_why(&argv)?;
    }

    /// Valid lines parse; edited ones parse or are refused with a message.
    #[test]
    fn fuzz_redis_edited_lines(
        line in prop::sample::select(LINES),
        edits in edits(),
        keep_subcommand in any::<bool>(),
    ) {
        let words: Vec<&str> = line.split(' ').collect();
        let argv: Vec<Bytes> = words.iter().map(|w| Bytes::copy_from_slice(w.as_bytes())).collect();
        prop_assert!(parse(&argv).is_ok(), "{} does not parse: {:?}", line, parse(&argv));
        let keep = if keep_subcommand && matches!(words[0], "XGROUP" | "XINFO") { 2 } else { 1 };
        parses_or_says_why(&edited(line, &edits, keep))?;
    }
}
