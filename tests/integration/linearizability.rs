//! Linearizability checker for histories of operations on one S2 stream.
//!
//! Clients of a concurrency test share a [`Recorder`]: before sending a request they call
//! [`Recorder::invoke`] with the [`Op`], and when the answer arrives they call
//! [`Recorder::complete`] with its [`Outcome`]. [`check`] then decides whether some total
//! order of the recorded operations, consistent with real time, explains every outcome under
//! the sequential model of a stream below.
//!
//! ```ignore
//! let recorder = Recorder::new(); // cloned into every client
//! let id = recorder.invoke(Op::Append(Append::new(["a", "b"]).with_match_seq_num(tail)));
//! recorder.complete(id, match stream.append(input).await {
//!     Ok(ack) => Outcome::Appended { start: ack.start.seq_num, end: ack.end.seq_num },
//!     Err(error) => match error { /* 412 */ .. => Outcome::SeqNumMismatch(next), .. },
//!     Err(_) => Outcome::Indeterminate,
//! });
//! let id = recorder.invoke(Op::ReadFromHead);
//! let records = /* one unary read from seq_num 0 */;
//! let hash = hash_bodies(records.iter().map(|record| &record.body));
//! recorder.complete(id, Outcome::Read { count: records.len() as u64, hash });
//! // Once every client is done:
//! check(&recorder.history()).unwrap_or_else(|violation| panic!("{violation}"));
//! ```
//!
//! # Model
//!
//! The state of a stream is its tail (the next seq_num), a chain hash over every record body
//! appended so far ([`chain_hash`], starting from 0) and its fencing token (initially `""`).
//! An append first checks its fencing token, then its `match_seq_num`; if both hold, its
//! records take seq_nums `tail..tail + n`, are chained into the hash, and a fence command
//! record in the batch replaces the token. Reads from the head and tail checks observe the
//! state without changing it.
//!
//! An append whose outcome is unknown (error, timeout, no response) may have been applied at
//! any moment after its invocation, at most once and atomically, or never. Failed reads and
//! tail checks carry no information and are dropped.
//!
//! # Algorithm
//!
//! Wing & Gong's search as refined by Lowe: depth-first over the operations that may come
//! next ("minimal" operations: invoked before every pending operation's response), with a
//! memo of visited (set of linearized operations, model state) pairs. Every effective append
//! strictly raises the tail, so along one search path the state at a given tail is fixed;
//! that makes these prunings sound:
//!
//! - An observation (read, tail check, rejected append) legal now is placed at once, without
//!   branching: any valid continuation can be rearranged to start with it.
//! - An acknowledged append legal now, when no observation is, is the only possible next
//!   operation: nothing else can come before it without moving the tail off its start.
//! - Every operation but a fencing token mismatch pins the tail it must be placed at. A path
//!   dies as soon as an operation pinned to the current tail is illegal there, a minimal one
//!   needs a tail already passed, or a write would jump over a pinned tail or take seq_nums
//!   acknowledged to another append.
//! - Each read pins the hash at its tail, and, since the chain hash is invertible, at the
//!   start of each acked append right before it, and so on backwards: a wrong guess about
//!   which indeterminate appends filled a gap dies when the gap closes, not at the next read.
//!
//! So the search only branches on indeterminate appends (which ones took effect, where, in
//! what order), tried most plausible first. A history with few of them is checked in about
//! one step per operation; the cost grows exponentially with the number of indeterminate
//! appends that took effect back to back with no observation of the tail between them, which
//! [`check_with_budget`] bounds.

use std::{
    cmp::Reverse,
    collections::{HashMap, HashSet},
    fmt,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use parking_lot::Mutex;
use xxhash_rust::xxh3::xxh3_64;

/// Number of distinct search states [`check`] may visit before giving up with
/// [`Violation::TooExpensive`]. Each costs about 60 bytes of memo.
pub const DEFAULT_BUDGET: u64 = 1_000_000;

/// Most recent operations of the linearizable prefix shown in a [`Frontier`].
const RECENT_SHOWN: usize = 6;

/// Odd, so multiplying by it is invertible modulo 2^64.
const CHAIN_MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

/// One link of the chain hash over record bodies: a stream holding bodies `b0, b1, ..` has
/// hash `chain_hash(chain_hash(0, b0), b1)..`.
///
/// A polynomial hash of the bodies' digests modulo 2^64, so a batch's effect on the hash is
/// one affine map ([`Affine`]), computed once, and it can be inverted: the checker works back
/// from a read's hash through the acked appends before it to the hash the stream must have
/// had where they start, which pins the contents of gaps left by indeterminate appends.
pub fn chain_hash(hash: u64, body: &[u8]) -> u64 {
    Affine::of_bodies([body]).apply(hash)
}

/// Newton's iteration: each step doubles the number of correct low bits, from 3 for any odd
/// number (`odd * odd ≡ 1 mod 8`) to 96 after five steps.
const fn inverse_mod_2_64(odd: u64) -> u64 {
    let mut inverse = odd;
    let mut step = 0;
    while step < 5 {
        inverse = inverse.wrapping_mul(2u64.wrapping_sub(odd.wrapping_mul(inverse)));
        step += 1;
    }
    inverse
}

/// The map `hash -> hash * mul + add` modulo 2^64; `mul` is odd, so the map is invertible.
#[derive(Clone, Copy, Debug)]
struct Affine {
    mul: u64,
    add: u64,
}

impl Affine {
    /// The effect of appending `bodies` on the chain hash.
    fn of_bodies<B: AsRef<[u8]>>(bodies: impl IntoIterator<Item = B>) -> Self {
        bodies
            .into_iter()
            .fold(Affine { mul: 1, add: 0 }, |Affine { mul, add }, body| {
                Affine {
                    mul: mul.wrapping_mul(CHAIN_MULTIPLIER),
                    add: add
                        .wrapping_mul(CHAIN_MULTIPLIER)
                        .wrapping_add(xxh3_64(body.as_ref())),
                }
            })
    }

    fn apply(self, hash: u64) -> u64 {
        hash.wrapping_mul(self.mul).wrapping_add(self.add)
    }

    fn invert(self, hash: u64) -> u64 {
        hash.wrapping_sub(self.add)
            .wrapping_mul(inverse_mod_2_64(self.mul))
    }
}

/// Chain hash of a whole sequence of bodies, as a reader from the head computes it.
pub fn hash_bodies<B: AsRef<[u8]>>(bodies: impl IntoIterator<Item = B>) -> u64 {
    bodies
        .into_iter()
        .fold(0, |hash, body| chain_hash(hash, body.as_ref()))
}

/// Position of an operation in its [`History`], in invocation-recording order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(pub usize);

impl fmt::Display for OpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// An append request.
///
/// `bodies` lists the body of every record of the batch in order, including a fence command
/// record, whose body is the new token's bytes: that is what a reader sees and hashes. When
/// the batch carries a fence command, `set_fence` holds the new token (and one of `bodies`
/// must equal it); [`Append::fence`] builds a batch made of just that command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Append {
    pub bodies: Vec<Bytes>,
    pub match_seq_num: Option<u64>,
    pub fencing_token: Option<String>,
    pub set_fence: Option<String>,
}

impl Append {
    pub fn new<B: Into<Bytes>>(bodies: impl IntoIterator<Item = B>) -> Self {
        Self {
            bodies: bodies.into_iter().map(Into::into).collect(),
            match_seq_num: None,
            fencing_token: None,
            set_fence: None,
        }
    }

    /// A batch holding only a fence command record that sets `new_token`.
    pub fn fence(new_token: impl Into<String>) -> Self {
        let new_token = new_token.into();
        Self {
            bodies: vec![Bytes::from(new_token.clone())],
            match_seq_num: None,
            fencing_token: None,
            set_fence: Some(new_token),
        }
    }

    pub fn with_match_seq_num(mut self, seq_num: u64) -> Self {
        self.match_seq_num = Some(seq_num);
        self
    }

    pub fn with_fencing_token(mut self, token: impl Into<String>) -> Self {
        self.fencing_token = Some(token.into());
        self
    }

    /// The S2 API's unary JSON append body for this batch (bodies as UTF-8 text).
    pub fn json_body(&self) -> serde_json::Value {
        let records: Vec<serde_json::Value> = match &self.set_fence {
            Some(token) => vec![serde_json::json!({"headers": [["", "fence"]], "body": token})],
            None => self
                .bodies
                .iter()
                .map(|b| serde_json::json!({"body": std::str::from_utf8(b).unwrap()}))
                .collect(),
        };
        let mut body = serde_json::json!({"records": records});
        if let Some(m) = self.match_seq_num {
            body["match_seq_num"] = serde_json::json!(m);
        }
        if let Some(t) = &self.fencing_token {
            body["fencing_token"] = serde_json::json!(t);
        }
        body
    }
}

/// A request to the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Append(Append),
    /// A read of every record from seq_num 0 up to the tail: one unary read, or a read
    /// session that ends at the tail.
    ReadFromHead,
    CheckTail,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Append(append) => {
                write!(f, "append of {} records", append.bodies.len())?;
                if let Some(seq_num) = append.match_seq_num {
                    write!(f, ", match_seq_num {seq_num}")?;
                }
                if let Some(token) = &append.fencing_token {
                    write!(f, ", fencing token {token:?}")?;
                }
                if let Some(token) = &append.set_fence {
                    write!(f, ", setting fence {token:?}")?;
                }
                Ok(())
            }
            Op::ReadFromHead => f.write_str("read from head"),
            Op::CheckTail => f.write_str("check tail"),
        }
    }
}

/// What the client got back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The append was acknowledged with seq_nums `start..end`.
    Appended { start: u64, end: u64 },
    /// The append was rejected; the stream's token is the one reported.
    FencingTokenMismatch(String),
    /// The append was rejected (412); the stream's tail is the one reported.
    SeqNumMismatch(u64),
    /// The read saw `count` records whose bodies chain to `hash` ([`hash_bodies`]).
    Read { count: u64, hash: u64 },
    /// The tail check reported this tail.
    Tail(u64),
    /// Error, timeout or lost connection: an append may or may not have been applied; a read
    /// or tail check tells nothing.
    Indeterminate,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Appended { start, end } => write!(f, "acked {start}..{end}"),
            Outcome::FencingTokenMismatch(current) => {
                write!(f, "fencing token mismatch (current {current:?})")
            }
            Outcome::SeqNumMismatch(next) => write!(f, "seq_num mismatch (next {next})"),
            Outcome::Read { count, hash } => write!(f, "{count} records, hash {hash:#018x}"),
            Outcome::Tail(tail) => write!(f, "tail {tail}"),
            Outcome::Indeterminate => f.write_str("indeterminate"),
        }
    }
}

/// One recorded operation. Times are nanoseconds on any clock shared by all clients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub op: Op,
    pub invoked_at: u64,
    /// `None` while (or if forever) no response arrived, which counts as indeterminate.
    pub completion: Option<Completion>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    pub responded_at: u64,
    pub outcome: Outcome,
}

/// Operations on one stream, in the order their invocations were recorded.
#[derive(Clone, Debug, Default)]
pub struct History {
    entries: Vec<Entry>,
}

impl History {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn invoke(&mut self, op: Op, at: u64) -> OpId {
        self.entries.push(Entry {
            op,
            invoked_at: at,
            completion: None,
        });
        OpId(self.entries.len() - 1)
    }

    /// Panics if `id` was already completed: each request gets at most one response.
    pub fn complete(&mut self, id: OpId, outcome: Outcome, at: u64) {
        let completion = &mut self.entries[id.0].completion;
        assert!(completion.is_none(), "operation {id} completed twice");
        *completion = Some(Completion {
            responded_at: at,
            outcome,
        });
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }
}

/// A [`History`] shared by concurrent clients (clone it into each), timestamped with a
/// monotonic clock. Invocation times are taken before the call returns, so before the
/// request is sent; response times when `complete` is called, so after the answer arrived.
#[derive(Clone, Debug)]
pub struct Recorder {
    inner: Arc<Mutex<RecorderInner>>,
}

#[derive(Debug)]
struct RecorderInner {
    origin: Instant,
    history: History,
}

impl RecorderInner {
    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).expect("recording lasted centuries")
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            inner: Arc::new(Mutex::new(RecorderInner {
                origin: Instant::now(),
                history: History::new(),
            })),
        }
    }
}

impl Recorder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn invoke(&self, op: Op) -> OpId {
        let mut inner = self.inner.lock();
        let at = inner.now();
        inner.history.invoke(op, at)
    }

    /// An operation never completed is indeterminate, as is one completed with
    /// [`Outcome::Indeterminate`].
    pub fn complete(&self, id: OpId, outcome: Outcome) {
        let mut inner = self.inner.lock();
        let at = inner.now();
        inner.history.complete(id, outcome, at);
    }

    pub fn history(&self) -> History {
        self.inner.lock().history.clone()
    }
}

/// A witness order found by [`check`].
#[derive(Clone, Debug)]
pub struct Linearization {
    /// Every operation with a definite outcome, plus the indeterminate appends that took
    /// effect, in linearization order.
    pub order: Vec<OpId>,
    /// Search states visited.
    pub explored: u64,
}

/// Why a history was rejected.
#[derive(Clone, Debug)]
pub enum Violation {
    /// The history itself is inconsistent (e.g. an outcome of the wrong kind).
    Malformed {
        op: OpId,
        reason: String,
    },
    NotLinearizable(Box<Frontier>),
    /// The search exceeded its budget; the frontier is the deepest point it reached.
    TooExpensive {
        explored: u64,
        frontier: Box<Frontier>,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Malformed { op, reason } => {
                write!(f, "malformed history: operation {op}: {reason}")
            }
            Violation::NotLinearizable(frontier) => {
                write!(f, "history is not linearizable\n{frontier}")
            }
            Violation::TooExpensive { explored, frontier } => write!(
                f,
                "linearizability check too expensive: gave up after {explored} search states; \
                 deepest point reached:\n{frontier}"
            ),
        }
    }
}

/// The deepest point of a failed search: the longest linearizable prefix found and the
/// operations that could come next there, none of which can.
#[derive(Clone, Debug)]
pub struct Frontier {
    pub prefix: Vec<OpId>,
    /// Operations considered: all of them except failed reads and tail checks.
    pub operations: usize,
    /// Operations with a definite outcome, which must all be placed.
    pub required: usize,
    pub tail: u64,
    pub fencing_token: String,
    /// Descriptions of the last operations of the prefix.
    pub recent: Vec<String>,
    pub blocked: Vec<Blocked>,
    /// Indeterminate appends that could come next but whose fencing token or
    /// `match_seq_num` fails here, left out of `blocked` as they are seldom the culprits.
    pub inapplicable: usize,
}

/// An operation that could come next in real-time order, and why it cannot.
#[derive(Clone, Debug)]
pub struct Blocked {
    pub id: OpId,
    pub description: String,
    pub reason: String,
}

impl fmt::Display for Frontier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "longest linearizable prefix: {} of {} operations ({} with definite outcomes), \
             leaving tail {} and fencing token {:?}",
            self.prefix.len(),
            self.operations,
            self.required,
            self.tail,
            self.fencing_token,
        )?;
        if self.prefix.len() > self.recent.len() {
            writeln!(f, "  ... {} earlier", self.prefix.len() - self.recent.len())?;
        }
        for description in &self.recent {
            writeln!(f, "  {description}")?;
        }
        writeln!(f, "operations that could come next, none of which fits:")?;
        for blocked in &self.blocked {
            writeln!(f, "  {}: {}", blocked.description, blocked.reason)?;
        }
        if self.inapplicable > 0 {
            writeln!(
                f,
                "  and {} indeterminate appends whose fencing token or match_seq_num fails here",
                self.inapplicable
            )?;
        }
        Ok(())
    }
}

/// Decides whether `history` is linearizable, within [`DEFAULT_BUDGET`].
pub fn check(history: &History) -> Result<Linearization, Violation> {
    check_with_budget(history, DEFAULT_BUDGET)
}

/// Decides whether `history` is linearizable, visiting at most `budget` search states.
pub fn check_with_budget(history: &History, budget: u64) -> Result<Linearization, Violation> {
    Problem::new(history)?.search(budget)
}

/// Interned fencing token; `Token(0)` is the initial empty token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Token(u32);

/// The sequential model's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct State {
    tail: u64,
    hash: u64,
    token: Token,
}

impl State {
    const INITIAL: State = State {
        tail: 0,
        hash: 0,
        token: Token(0),
    };
}

/// An operation with a usable outcome, with tokens interned.
#[derive(Clone, Copy, Debug)]
enum Action {
    Append {
        records: u64,
        batch: Affine,
        match_seq_num: Option<u64>,
        fencing_token: Option<Token>,
        set_fence: Option<Token>,
        result: AppendResult,
    },
    Read {
        count: u64,
        hash: u64,
    },
    CheckTail {
        tail: u64,
    },
}

#[derive(Clone, Copy, Debug)]
enum AppendResult {
    Acked { start: u64, end: u64 },
    FencingTokenMismatch(Token),
    SeqNumMismatch(u64),
    Indeterminate,
}

/// Why an action is illegal in a state.
#[derive(Clone, Copy, Debug)]
enum Refusal {
    /// The outcome pins the tail to `needed`.
    Tail { needed: u64 },
    /// An acked range whose length differs from the batch's.
    RangeLength { start: u64, end: u64, records: u64 },
    /// A read whose hash differs from the stream's at the same tail.
    Hash { seen: u64 },
    /// The presented token differs from the stream's, so the append cannot succeed.
    FenceRejects { presented: Token },
    /// A fencing token mismatch was reported although the presented token matches.
    FenceAccepts,
    /// A fencing token mismatch reported another token than the stream's.
    ReportedToken { reported: Token },
    /// `match_seq_num` differs from the tail, so the append cannot succeed.
    MatchSeqNumRejects { seq_num: u64 },
    /// A seq_num mismatch was reported although `match_seq_num` equals the tail.
    MatchSeqNumAccepts,
    /// A seq_num mismatch was reported for an append without `match_seq_num`.
    NoMatchSeqNum,
    /// A fencing token mismatch was reported for an append without a fencing token.
    NoFencingToken,
}

impl Refusal {
    /// Whether no state at all makes the action legal.
    fn is_permanent(self) -> bool {
        matches!(
            self,
            Refusal::RangeLength { .. } | Refusal::NoMatchSeqNum | Refusal::NoFencingToken
        )
    }
}

impl Action {
    /// Whether the action is an indeterminate append, which may be left out.
    fn is_optional(&self) -> bool {
        matches!(
            self,
            Action::Append {
                result: AppendResult::Indeterminate,
                ..
            }
        )
    }

    /// Whether the action, when legal, changes the state (and then strictly raises the tail).
    fn writes(&self) -> bool {
        matches!(
            self,
            Action::Append {
                result: AppendResult::Acked { .. } | AppendResult::Indeterminate,
                ..
            }
        )
    }

    /// The only tail at which the action can be legal, if its outcome pins one.
    fn required_tail(&self) -> Option<u64> {
        match *self {
            Action::Append { result, .. } => match result {
                AppendResult::Acked { start, .. } => Some(start),
                AppendResult::SeqNumMismatch(next) => Some(next),
                AppendResult::FencingTokenMismatch(_) | AppendResult::Indeterminate => None,
            },
            Action::Read { count, .. } => Some(count),
            Action::CheckTail { tail } => Some(tail),
        }
    }

    /// Whether the action cannot be legal in `state` or in any state following it.
    ///
    /// Sound because along one path the tail never decreases and every state change raises
    /// it, so the state at the current tail is the current state.
    fn is_dead(&self, state: State, refusal: Refusal) -> bool {
        refusal.is_permanent() || self.required_tail().is_some_and(|tail| tail <= state.tail)
    }

    /// The state after the action, if it is legal in `state`.
    fn step(&self, state: State) -> Result<State, Refusal> {
        match *self {
            Action::Read { count, hash } => {
                if count != state.tail {
                    Err(Refusal::Tail { needed: count })
                } else if hash != state.hash {
                    Err(Refusal::Hash { seen: hash })
                } else {
                    Ok(state)
                }
            }
            Action::CheckTail { tail } => {
                if tail == state.tail {
                    Ok(state)
                } else {
                    Err(Refusal::Tail { needed: tail })
                }
            }
            Action::Append {
                records,
                batch,
                match_seq_num,
                fencing_token,
                set_fence,
                result,
            } => {
                let fence_refusal = fencing_token
                    .filter(|&presented| presented != state.token)
                    .map(|presented| Refusal::FenceRejects { presented });
                let match_refusal = match_seq_num
                    .filter(|&seq_num| seq_num != state.tail)
                    .map(|seq_num| Refusal::MatchSeqNumRejects { seq_num });
                let applied = State {
                    tail: state.tail + records,
                    hash: batch.apply(state.hash),
                    token: set_fence.unwrap_or(state.token),
                };
                match result {
                    AppendResult::Acked { start, end } => {
                        if end.checked_sub(start) != Some(records) {
                            Err(Refusal::RangeLength {
                                start,
                                end,
                                records,
                            })
                        } else if start != state.tail {
                            Err(Refusal::Tail { needed: start })
                        } else if let Some(refusal) = fence_refusal.or(match_refusal) {
                            Err(refusal)
                        } else {
                            Ok(applied)
                        }
                    }
                    AppendResult::Indeterminate => match fence_refusal.or(match_refusal) {
                        Some(refusal) => Err(refusal),
                        None => Ok(applied),
                    },
                    AppendResult::FencingTokenMismatch(current) => {
                        if fencing_token.is_none() {
                            Err(Refusal::NoFencingToken)
                        } else if fence_refusal.is_none() {
                            Err(Refusal::FenceAccepts)
                        } else if current != state.token {
                            Err(Refusal::ReportedToken { reported: current })
                        } else {
                            Ok(state)
                        }
                    }
                    AppendResult::SeqNumMismatch(next) => {
                        if match_seq_num.is_none() {
                            Err(Refusal::NoMatchSeqNum)
                        } else if next != state.tail {
                            Err(Refusal::Tail { needed: next })
                        } else if let Some(refusal) = fence_refusal {
                            Err(refusal)
                        } else if match_refusal.is_none() {
                            Err(Refusal::MatchSeqNumAccepts)
                        } else {
                            Ok(state)
                        }
                    }
                }
            }
        }
    }
}

/// An operation prepared for the search.
#[derive(Debug)]
struct Prepared {
    id: OpId,
    invoked_at: u64,
    /// `u64::MAX` for indeterminate appends: they may take effect at any later time, so they
    /// never have to precede anything.
    responded_at: u64,
    action: Action,
}

/// Set of prepared operations, by index.
#[derive(Clone, Debug)]
struct Bitset(Vec<u64>);

impl Bitset {
    fn new(len: usize) -> Self {
        Self(vec![0; len.div_ceil(64)])
    }

    fn contains(&self, index: usize) -> bool {
        self.0[index / 64] & (1 << (index % 64)) != 0
    }

    fn insert(&mut self, index: usize) {
        self.0[index / 64] |= 1 << (index % 64);
    }

    fn remove(&mut self, index: usize) {
        self.0[index / 64] &= !(1 << (index % 64));
    }
}

/// A node of the depth-first search.
struct Frame {
    state: State,
    /// Position in `Problem::required` of the earliest-invoked required operation not yet
    /// linearized: everything before it is linearized.
    first: usize,
    /// Latest invocation among the linearized operations: roughly when the path is in real
    /// time, used to guess which indeterminate append took effect next.
    clock: u64,
    /// XOR of the Zobrist keys of the linearized operations.
    key: u128,
    /// The operation linearized to reach this node (`None` at the root).
    via: Option<usize>,
    /// Operations still to try from this node, last first.
    branches: Vec<usize>,
}

struct Problem<'h> {
    history: &'h History,
    /// Sorted by invocation time.
    ops: Vec<Prepared>,
    /// Indices into `ops` of operations with a definite outcome, which must be linearized.
    required: Vec<usize>,
    /// Indices into `ops` of indeterminate appends, which may be omitted.
    optional: Vec<usize>,
    /// Required operations with the tail they pin ([`Action::required_tail`]), sorted by
    /// tail. Every path to a full linearization passes through each of these tails.
    pins: Vec<(u64, usize)>,
    /// Hashes the stream must have at given tails, sorted by tail: each read's own, and
    /// those derived from it backwards through contiguous acked appends ([`Affine::invert`]).
    hash_pins: Vec<HashPin>,
    /// Random key per operation; a set of operations is memoized as the XOR of its keys.
    /// 128 bits make a collision (which could wrongly prune a branch) vanishingly unlikely.
    keys: Vec<u128>,
    tokens: Vec<&'h str>,
}

/// Fencing tokens seen in a history, numbered in order of appearance.
struct Interner<'h> {
    tokens: Vec<&'h str>,
    ids: HashMap<&'h str, Token>,
}

impl<'h> Interner<'h> {
    fn new() -> Self {
        Self {
            tokens: vec![""],
            ids: HashMap::from([("", Token(0))]),
        }
    }

    fn intern(&mut self, token: &'h str) -> Token {
        *self.ids.entry(token).or_insert_with(|| {
            self.tokens.push(token);
            Token(u32::try_from(self.tokens.len() - 1).expect("fewer than 2^32 tokens"))
        })
    }
}

/// The operation recorded in `entry` prepared for the search, or `None` for a failed read or
/// tail check, which tells nothing.
fn prepare<'h>(
    id: OpId,
    entry: &'h Entry,
    tokens: &mut Interner<'h>,
) -> Result<Option<Prepared>, Violation> {
    let malformed = |reason: String| Violation::Malformed { op: id, reason };
    let completion = entry.completion.as_ref();
    if let Some(completion) = completion
        && completion.responded_at < entry.invoked_at
    {
        return Err(malformed("responded before it was invoked".into()));
    }
    let outcome = completion.map(|completion| &completion.outcome);
    let action = match (&entry.op, outcome) {
        (Op::Append(append), outcome) => {
            if append.bodies.is_empty() {
                return Err(malformed("an append carries at least one record".into()));
            }
            if let Some(token) = &append.set_fence
                && !append.bodies.iter().any(|body| body == token.as_bytes())
            {
                return Err(malformed(format!(
                    "bodies lack the fence command record (body {token:?})"
                )));
            }
            let result = match outcome {
                None | Some(Outcome::Indeterminate) => AppendResult::Indeterminate,
                Some(&Outcome::Appended { start, end }) => AppendResult::Acked { start, end },
                Some(Outcome::FencingTokenMismatch(current)) => {
                    AppendResult::FencingTokenMismatch(tokens.intern(current))
                }
                Some(&Outcome::SeqNumMismatch(next)) => AppendResult::SeqNumMismatch(next),
                Some(other) => return Err(malformed(format!("an append cannot end in {other}"))),
            };
            Action::Append {
                records: append.bodies.len() as u64,
                batch: Affine::of_bodies(&append.bodies),
                match_seq_num: append.match_seq_num,
                fencing_token: append.fencing_token.as_deref().map(|t| tokens.intern(t)),
                set_fence: append.set_fence.as_deref().map(|t| tokens.intern(t)),
                result,
            }
        }
        (Op::ReadFromHead | Op::CheckTail, None | Some(Outcome::Indeterminate)) => {
            return Ok(None);
        }
        (Op::ReadFromHead, Some(&Outcome::Read { count, hash })) => Action::Read { count, hash },
        (Op::CheckTail, Some(&Outcome::Tail(tail))) => Action::CheckTail { tail },
        (op, Some(outcome)) => return Err(malformed(format!("{op} cannot end in {outcome}"))),
    };
    Ok(Some(Prepared {
        id,
        invoked_at: entry.invoked_at,
        responded_at: match completion {
            Some(completion) if !action.is_optional() => completion.responded_at,
            _ => u64::MAX,
        },
        action,
    }))
}

impl<'h> Problem<'h> {
    fn new(history: &'h History) -> Result<Self, Violation> {
        let mut tokens = Interner::new();
        let mut ops = Vec::new();
        for (index, entry) in history.entries.iter().enumerate() {
            ops.extend(prepare(OpId(index), entry, &mut tokens)?);
        }
        ops.sort_by_key(|op| (op.invoked_at, op.id));
        let (optional, required): (Vec<usize>, Vec<usize>) =
            (0..ops.len()).partition(|&index| ops[index].action.is_optional());
        let mut pins: Vec<(u64, usize)> = required
            .iter()
            .filter_map(|&op| Some((ops[op].action.required_tail()?, op)))
            .collect();
        pins.sort_unstable();
        let hash_pins = derive_hash_pins(&ops);
        let mut seed = 0x5eed_u64;
        let keys = (0..ops.len())
            .map(|_| (u128::from(splitmix64(&mut seed)) << 64) | u128::from(splitmix64(&mut seed)))
            .collect();
        Ok(Self {
            history,
            ops,
            required,
            optional,
            pins,
            hash_pins,
            keys,
            tokens: tokens.tokens,
        })
    }

    fn search(&self, budget: u64) -> Result<Linearization, Violation> {
        let mut done = Bitset::new(self.ops.len());
        let mut memo = HashSet::from([(0u128, State::INITIAL)]);
        let mut explored = 1;
        // The deepest node is a dead end (its children would be deeper, and a memo hit
        // stands for an equally deep node visited earlier), so only dead ends are candidates.
        let mut deepest = (Vec::new(), State::INITIAL);
        let path = |stack: &[Frame]| stack.iter().filter_map(|frame| frame.via).collect();
        let Some(branches) = self.expand(State::INITIAL, 0, 0, &done) else {
            return Ok(Linearization {
                order: Vec::new(),
                explored,
            });
        };
        let mut stack = vec![Frame {
            state: State::INITIAL,
            first: 0,
            clock: 0,
            key: 0,
            via: None,
            branches,
        }];
        while let Some(frame) = stack.last_mut() {
            let Some(op) = frame.branches.pop() else {
                if let Some(via) = frame.via {
                    done.remove(via);
                }
                stack.pop();
                continue;
            };
            let state = self.ops[op]
                .action
                .step(frame.state)
                .expect("branches are legal in their node's state");
            let key = frame.key ^ self.keys[op];
            let parent_first = frame.first;
            let clock = frame.clock.max(self.ops[op].invoked_at);
            if !memo.insert((key, state)) {
                continue;
            }
            explored += 1;
            if explored > budget {
                if stack.len() > deepest.0.len() {
                    deepest = (path(&stack), stack[stack.len() - 1].state);
                }
                return Err(Violation::TooExpensive {
                    explored,
                    frontier: Box::new(self.frontier(&deepest.0, deepest.1)),
                });
            }
            done.insert(op);
            let first = self.advance(parent_first, &done);
            let Some(branches) = self.expand(state, first, clock, &done) else {
                let order: Vec<usize> = path(&stack);
                return Ok(Linearization {
                    order: order
                        .into_iter()
                        .chain([op])
                        .map(|op| self.ops[op].id)
                        .collect(),
                    explored,
                });
            };
            let dead_end = branches.is_empty();
            stack.push(Frame {
                state,
                first,
                clock,
                key,
                via: Some(op),
                branches,
            });
            if dead_end && stack.len() - 1 > deepest.0.len() {
                deepest = (path(&stack), state);
            }
        }
        Err(Violation::NotLinearizable(Box::new(
            self.frontier(&deepest.0, deepest.1),
        )))
    }

    /// Moves `first` past linearized required operations.
    fn advance(&self, mut first: usize, done: &Bitset) -> usize {
        while first < self.required.len() && done.contains(self.required[first]) {
            first += 1;
        }
        first
    }

    /// The pending required operations that may be linearized next (none responded before
    /// they were invoked), and the earliest response among pending required operations,
    /// before which optional ones must be invoked to be candidates too.
    fn minimal(&self, first: usize, done: &Bitset) -> (Vec<usize>, u64) {
        let mut horizon = u64::MAX;
        let mut minimal = Vec::new();
        for &op in &self.required[first..] {
            let prepared = &self.ops[op];
            if prepared.invoked_at > horizon {
                break;
            }
            if !done.contains(op) {
                horizon = horizon.min(prepared.responded_at);
                minimal.push(op);
            }
        }
        (minimal, horizon)
    }

    fn minimal_optional(&self, horizon: u64, done: &Bitset) -> impl Iterator<Item = usize> {
        self.optional
            .iter()
            .copied()
            .take_while(move |&op| self.ops[op].invoked_at <= horizon)
            .filter(move |&op| !done.contains(op))
    }

    /// The operations to try next from a node, or `None` if every required operation is
    /// linearized (the remaining indeterminate appends are omitted). Empty if the node is a
    /// dead end. See the module documentation for why the prunings are sound.
    ///
    /// Indeterminate appends are tried in order of how plausibly they come next: first those
    /// reaching the next pinned tail (their hash already checked), then those after which one
    /// more append could reach the next hash pin, then by invocation time: first the earliest
    /// invoked at or after `clock`, then backwards from `clock`, as an append invoked long
    /// before and not yet applied most likely never was.
    fn expand(&self, state: State, first: usize, clock: u64, done: &Bitset) -> Option<Vec<usize>> {
        if first == self.required.len() {
            return None;
        }
        if self.conflict_at(state, done).is_some() {
            return Some(Vec::new());
        }
        let (minimal, horizon) = self.minimal(first, done);
        let mut observation = None;
        let mut write = None;
        for op in minimal {
            let action = &self.ops[op].action;
            match action.step(state) {
                Ok(next) if action.writes() => write = write.or(Some((op, next))),
                Ok(_) => observation = observation.or(Some(op)),
                Err(refusal) if action.is_dead(state, refusal) => return Some(Vec::new()),
                Err(_) => {}
            }
        }
        if let Some(op) = observation {
            return Some(vec![op]);
        }
        if let Some((op, next)) = write {
            let blocked = self.pin_conflict(op, state.tail, next.tail).is_some();
            return Some(if blocked { Vec::new() } else { vec![op] });
        }
        let mut candidates: Vec<(usize, State)> = self
            .minimal_optional(horizon, done)
            .filter_map(|op| {
                let next = self.ops[op].action.step(state).ok()?;
                let fits = self.pin_conflict(op, state.tail, next.tail).is_none()
                    && self.conflict_at(next, done).is_none();
                fits.then_some((op, next))
            })
            .collect();
        let penultimate = self.penultimate_states(state.tail, &candidates);
        candidates.sort_by_key(|&(op, next)| {
            let lands_on_pin =
                !self.pinned_at(next.tail).is_empty() || !self.hash_pins_at(next.tail).is_empty();
            let completable = penultimate.contains(&(next.tail, next.hash));
            let invoked_at = self.ops[op].invoked_at;
            let recency = match invoked_at.checked_sub(clock) {
                Some(after) => (true, Reverse(after)),
                None => (false, Reverse(clock - invoked_at)),
            };
            (lands_on_pin, completable, recency)
        });
        Some(candidates.into_iter().map(|(op, _)| op).collect())
    }

    /// The states (tail, hash) from which one of `candidates` would reach the next hash pin
    /// above `tail` exactly. Only orders the branches: trying first the candidates that leave
    /// a gap one more append can close finds the right fill sooner.
    fn penultimate_states(&self, tail: u64, candidates: &[(usize, State)]) -> HashSet<(u64, u64)> {
        let next_pin = self.hash_pins.partition_point(|pin| pin.tail <= tail);
        let Some(pin) = self.hash_pins.get(next_pin) else {
            return HashSet::new();
        };
        candidates
            .iter()
            .filter_map(|&(op, _)| match self.ops[op].action {
                Action::Append { records, batch, .. } => {
                    Some((pin.tail.checked_sub(records)?, batch.invert(pin.hash)))
                }
                Action::Read { .. } | Action::CheckTail { .. } => None,
            })
            .collect()
    }

    /// Why the stream cannot be in `state` on this path, if it cannot: a pending operation
    /// pinned to its tail is illegal there, whatever follows (the state at a tail is fixed
    /// along a path), or a read implies another hash there.
    fn conflict_at(&self, state: State, done: &Bitset) -> Option<Conflict> {
        let illegal = self
            .pinned_at(state.tail)
            .iter()
            .find(|&&(_, op)| !done.contains(op) && self.ops[op].action.step(state).is_err());
        if let Some(&(_, op)) = illegal {
            return Some(Conflict::Illegal(op));
        }
        self.hash_pins_at(state.tail)
            .iter()
            .find(|pin| pin.hash != state.hash)
            .map(|pin| Conflict::Hash(*pin))
    }

    fn hash_pins_at(&self, tail: u64) -> &[HashPin] {
        let start = self.hash_pins.partition_point(|pin| pin.tail < tail);
        let end = self.hash_pins.partition_point(|pin| pin.tail <= tail);
        &self.hash_pins[start..end]
    }

    /// Required operations pinned to `tail`.
    fn pinned_at(&self, tail: u64) -> &[(u64, usize)] {
        let start = self.pins.partition_point(|&(pin, _)| pin < tail);
        let end = self.pins.partition_point(|&(pin, _)| pin <= tail);
        &self.pins[start..end]
    }

    /// A pending required operation that the write `op`, taking the tail from `from` to
    /// `to`, would make impossible: one pinned strictly between, or, if `op` is
    /// indeterminate, an acked append starting at `from`, whose seq_nums `op` would take.
    /// Pins above `from` belong to pending operations, as does an acked append at `from`.
    fn pin_conflict(&self, op: usize, from: u64, to: u64) -> Option<usize> {
        let after = self.pins.partition_point(|&(pin, _)| pin <= from);
        if let Some(&(pin, pinned)) = self.pins.get(after)
            && pin < to
        {
            return Some(pinned);
        }
        if self.ops[op].action.required_tail().is_some() {
            return None;
        }
        self.pinned_at(from).iter().find_map(|&(_, pinned)| {
            matches!(
                self.ops[pinned].action,
                Action::Append {
                    result: AppendResult::Acked { .. },
                    ..
                }
            )
            .then_some(pinned)
        })
    }

    fn frontier(&self, prefix: &[usize], state: State) -> Frontier {
        let mut done = Bitset::new(self.ops.len());
        for &op in prefix {
            done.insert(op);
        }
        let (minimal, horizon) = self.minimal(self.advance(0, &done), &done);
        let (applicable, inapplicable): (Vec<usize>, Vec<usize>) = self
            .minimal_optional(horizon, &done)
            .partition(|&op| self.ops[op].action.step(state).is_ok());
        let mut blocked: Vec<Blocked> = minimal
            .into_iter()
            .chain(applicable)
            .map(|op| Blocked {
                id: self.ops[op].id,
                description: self.describe(op),
                reason: self.reason(op, state, &done),
            })
            .collect();
        if let Some(conflict) = self.conflict_at(state, &done) {
            let op = conflict.op();
            blocked.push(Blocked {
                id: self.ops[op].id,
                description: self.describe(op),
                reason: self.explain_conflict(conflict, state, &done),
            });
        }
        Frontier {
            prefix: prefix.iter().map(|&op| self.ops[op].id).collect(),
            operations: self.ops.len(),
            required: self.required.len(),
            tail: state.tail,
            fencing_token: self.tokens[state.token.0 as usize].to_owned(),
            recent: prefix[prefix.len().saturating_sub(RECENT_SHOWN)..]
                .iter()
                .map(|&op| self.describe(op))
                .collect(),
            blocked,
            inapplicable: inapplicable.len(),
        }
    }

    fn explain_refusal(&self, refusal: Refusal, state: State) -> String {
        let token = |token: Token| self.tokens[token.0 as usize];
        let current = token(state.token);
        let tail = state.tail;
        match refusal {
            Refusal::Tail { needed } if needed < tail => {
                format!("needs tail {needed}, but the stream is already at {tail}")
            }
            Refusal::Tail { needed } => format!("needs tail {needed}, but the stream is at {tail}"),
            Refusal::RangeLength {
                start,
                end,
                records,
            } => format!("acked range {start}..{end} does not hold the batch's {records} records"),
            Refusal::Hash { seen } => format!(
                "read hash {seen:#018x} differs from the stream's {:#018x} at {tail} records",
                state.hash
            ),
            Refusal::FenceRejects { presented } => format!(
                "fencing token {:?} differs from the stream's {current:?}, so the append \
                 must fail",
                token(presented)
            ),
            Refusal::FenceAccepts => {
                format!("fencing token matches the stream's {current:?}, so the append cannot fail")
            }
            Refusal::ReportedToken { reported } => format!(
                "reported token {:?}, but the stream's is {current:?}",
                token(reported)
            ),
            Refusal::MatchSeqNumRejects { seq_num } => {
                format!("match_seq_num {seq_num} differs from tail {tail}, so the append must fail")
            }
            Refusal::MatchSeqNumAccepts => {
                format!("match_seq_num equals tail {tail}, so the append cannot fail")
            }
            Refusal::NoMatchSeqNum => "seq_num mismatch without a match_seq_num".into(),
            Refusal::NoFencingToken => "fencing token mismatch without a fencing token".into(),
        }
    }

    fn explain_conflict(&self, conflict: Conflict, state: State, done: &Bitset) -> String {
        match conflict {
            Conflict::Illegal(op) => {
                format!("{} {}", self.ops[op].id, self.reason(op, state, done))
            }
            Conflict::Hash(pin) => {
                let read = &self.ops[pin.read];
                let derived = match read.action {
                    Action::Read { count, .. } if count != pin.tail => {
                        " (working back through the acked appends after it)"
                    }
                    _ => "",
                };
                format!(
                    "{} implies hash {:#018x} at tail {}{derived}, but the stream's is {:#018x}",
                    read.id, pin.hash, pin.tail, state.hash
                )
            }
        }
    }

    fn describe(&self, op: usize) -> String {
        let entry = &self.history.entries[self.ops[op].id.0];
        let time = |nanos| format!("{:?}", Duration::from_nanos(nanos));
        let (outcome, responded) = match &entry.completion {
            Some(completion) => (
                completion.outcome.to_string(),
                time(completion.responded_at),
            ),
            None => ("no response".to_owned(), "never".to_owned()),
        };
        format!(
            "{} {} -> {outcome} (invoked {}, responded {responded})",
            self.ops[op].id,
            entry.op,
            time(entry.invoked_at),
        )
    }

    fn reason(&self, op: usize, state: State, done: &Bitset) -> String {
        let action = &self.ops[op].action;
        let refusal = match action.step(state) {
            Ok(next) if action.writes() => {
                if let Some(pinned) = self.pin_conflict(op, state.tail, next.tail) {
                    return format!(
                        "would move the tail past {}, which {} needs",
                        self.ops[pinned].action.required_tail().unwrap_or_default(),
                        self.ops[pinned].id
                    );
                }
                return match self.conflict_at(next, done) {
                    Some(conflict) => format!(
                        "would reach tail {}, where {}",
                        next.tail,
                        self.explain_conflict(conflict, next, done)
                    ),
                    None => "could take effect here".into(),
                };
            }
            Ok(_) => return "legal here".into(),
            Err(refusal) => refusal,
        };
        let explanation = self.explain_refusal(refusal, state);
        if action.is_dead(state, refusal) {
            format!("{explanation} (it can no longer be placed)")
        } else {
            explanation
        }
    }
}

/// A hash the stream must have at a tail, implied by a read.
#[derive(Clone, Copy, Debug)]
struct HashPin {
    tail: u64,
    hash: u64,
    read: usize,
}

/// Why a state is impossible on the current path ([`Problem::conflict_at`]).
#[derive(Clone, Copy, Debug)]
enum Conflict {
    /// This pending operation is pinned to the state's tail but illegal in the state.
    Illegal(usize),
    Hash(HashPin),
}

impl Conflict {
    fn op(self) -> usize {
        match self {
            Conflict::Illegal(op) => op,
            Conflict::Hash(pin) => pin.read,
        }
    }
}

/// The [`HashPin`]s of `ops`, sorted by tail.
///
/// If a read saw hash `h` at tail `t` and an acked append covers exactly `s..t`, the stream
/// had the hash that the batch's [`Affine`] map takes to `h` at `s` in any linearization, and so on backwards until a
/// tail where no acked append ends (a gap left by indeterminate appends). Walks stop at pins
/// already derived, so the total work is linear in the history.
fn derive_hash_pins(ops: &[Prepared]) -> Vec<HashPin> {
    let mut acked_by_end: HashMap<u64, Vec<(u64, Affine)>> = HashMap::new();
    for op in ops {
        if let Action::Append {
            records,
            batch,
            result: AppendResult::Acked { start, end },
            ..
        } = op.action
            && end.checked_sub(start) == Some(records)
        {
            acked_by_end.entry(end).or_default().push((start, batch));
        }
    }
    let mut derived = HashSet::new();
    let mut pins = Vec::new();
    for (read, op) in ops.iter().enumerate() {
        let Action::Read { count, hash } = op.action else {
            continue;
        };
        let (mut tail, mut hash) = (count, hash);
        while derived.insert((tail, hash)) {
            pins.push(HashPin { tail, hash, read });
            let Some(&[(start, batch)]) = acked_by_end.get(&tail).map(Vec::as_slice) else {
                break;
            };
            hash = batch.invert(hash);
            tail = start;
        }
    }
    pins.sort_unstable_by_key(|pin| pin.tail);
    pins
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use std::{thread, time::Instant};

    use rand::{Rng, SeedableRng, rngs::StdRng};

    use super::*;

    fn append(bodies: &[&'static str]) -> Append {
        Append::new(bodies.iter().copied())
    }

    fn read_of(bodies: &[&str]) -> Outcome {
        Outcome::Read {
            count: bodies.len() as u64,
            hash: hash_bodies(bodies),
        }
    }

    fn acked(start: u64, end: u64) -> Outcome {
        Outcome::Appended { start, end }
    }

    /// Records `op` invoked at `invoked` and answered at `responded` with `outcome`.
    fn run(history: &mut History, invoked: u64, responded: u64, op: Op, outcome: Outcome) -> OpId {
        let id = history.invoke(op, invoked);
        history.complete(id, outcome, responded);
        id
    }

    fn assert_linearizable(history: &History) -> Linearization {
        check(history).unwrap_or_else(|violation| panic!("{violation}"))
    }

    /// Asserts the history is rejected with `culprit` among the operations that could not
    /// be placed next.
    fn assert_not_linearizable(history: &History, culprit: OpId) -> Frontier {
        match check(history) {
            Ok(linearization) => panic!("accepted with order {:?}", linearization.order),
            Err(Violation::NotLinearizable(frontier)) => {
                assert!(
                    frontier.blocked.iter().any(|blocked| blocked.id == culprit),
                    "{culprit} not blamed:\n{frontier}"
                );
                *frontier
            }
            Err(other) => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn sequential_appends_and_reads() {
        let mut h = History::new();
        let a = run(&mut h, 0, 1, Op::Append(append(&["a", "b"])), acked(0, 2));
        let r1 = run(&mut h, 2, 3, Op::ReadFromHead, read_of(&["a", "b"]));
        let b = run(&mut h, 4, 5, Op::Append(append(&["c"])), acked(2, 3));
        let r2 = run(&mut h, 6, 7, Op::ReadFromHead, read_of(&["a", "b", "c"]));
        let t = run(&mut h, 8, 9, Op::CheckTail, Outcome::Tail(3));
        assert_eq!(assert_linearizable(&h).order, vec![a, r1, b, r2, t]);
    }

    #[test]
    fn concurrent_appends_acked_in_either_order() {
        for (first_range, second_range) in [((0, 1), (1, 2)), ((1, 2), (0, 1))] {
            let mut h = History::new();
            run(
                &mut h,
                0,
                10,
                Op::Append(append(&["a"])),
                acked(first_range.0, first_range.1),
            );
            run(
                &mut h,
                1,
                5,
                Op::Append(append(&["b"])),
                acked(second_range.0, second_range.1),
            );
            let seen: &[&str] = if first_range.0 == 0 {
                &["a", "b"]
            } else {
                &["b", "a"]
            };
            run(&mut h, 11, 12, Op::ReadFromHead, read_of(seen));
            assert_linearizable(&h);
        }
    }

    #[test]
    fn read_concurrent_with_append_sees_either_state() {
        for seen in [&[][..], &["a"][..]] {
            let mut h = History::new();
            run(&mut h, 0, 10, Op::Append(append(&["a"])), acked(0, 1));
            run(&mut h, 2, 8, Op::ReadFromHead, read_of(seen));
            assert_linearizable(&h);
        }
        let mut h = History::new();
        run(&mut h, 0, 10, Op::Append(append(&["a"])), acked(0, 1));
        run(&mut h, 2, 8, Op::ReadFromHead, read_of(&["a"]));
        run(&mut h, 3, 9, Op::CheckTail, Outcome::Tail(0));
        assert_linearizable(&h);
    }

    #[test]
    fn seq_num_mismatch_explained_by_concurrent_append() {
        let mut h = History::new();
        run(&mut h, 0, 10, Op::Append(append(&["a"])), acked(0, 1));
        let conditional = append(&["b"]).with_match_seq_num(0);
        run(
            &mut h,
            1,
            9,
            Op::Append(conditional),
            Outcome::SeqNumMismatch(1),
        );
        run(&mut h, 11, 12, Op::ReadFromHead, read_of(&["a"]));
        assert_linearizable(&h);
    }

    #[test]
    fn fence_then_mismatch() {
        let mut h = History::new();
        run(&mut h, 0, 1, Op::Append(Append::fence("t1")), acked(0, 1));
        let stale = append(&["x"]).with_fencing_token("");
        run(
            &mut h,
            2,
            3,
            Op::Append(stale),
            Outcome::FencingTokenMismatch("t1".into()),
        );
        let fenced = append(&["y"]).with_fencing_token("t1");
        run(&mut h, 4, 5, Op::Append(fenced), acked(1, 2));
        let refence = Append::fence("t2").with_fencing_token("t1");
        run(&mut h, 6, 7, Op::Append(refence), acked(2, 3));
        let stale = append(&["z"])
            .with_fencing_token("t1")
            .with_match_seq_num(0);
        run(
            &mut h,
            8,
            9,
            Op::Append(stale),
            Outcome::FencingTokenMismatch("t2".into()),
        );
        run(
            &mut h,
            10,
            11,
            Op::ReadFromHead,
            read_of(&["t1", "y", "t2"]),
        );
        assert_linearizable(&h);
    }

    #[test]
    fn indeterminate_append_that_applied() {
        let mut h = History::new();
        let lost = h.invoke(Op::Append(append(&["a"])), 0);
        h.complete(lost, Outcome::Indeterminate, 5);
        run(&mut h, 6, 7, Op::ReadFromHead, read_of(&[]));
        run(&mut h, 8, 9, Op::ReadFromHead, read_of(&["a"]));
        run(&mut h, 10, 11, Op::Append(append(&["b"])), acked(1, 2));
        let order = assert_linearizable(&h).order;
        assert!(order.contains(&lost));
    }

    #[test]
    fn indeterminate_append_that_did_not_apply() {
        let mut h = History::new();
        let lost = h.invoke(Op::Append(append(&["a"])), 0);
        run(&mut h, 10, 11, Op::ReadFromHead, read_of(&[]));
        run(&mut h, 12, 13, Op::Append(append(&["b"])), acked(0, 1));
        run(&mut h, 14, 15, Op::ReadFromHead, read_of(&["b"]));
        let failed_read = h.invoke(Op::ReadFromHead, 16);
        h.complete(failed_read, Outcome::Indeterminate, 17);
        let order = assert_linearizable(&h).order;
        assert!(!order.contains(&lost));
        assert!(!order.contains(&failed_read));
    }

    #[test]
    fn gap_filled_by_the_right_indeterminate_append() {
        let mut h = History::new();
        let x = h.invoke(Op::Append(append(&["x"])), 0);
        let y = h.invoke(Op::Append(append(&["y"])), 0);
        run(&mut h, 5, 6, Op::Append(append(&["c"])), acked(1, 2));
        run(&mut h, 7, 8, Op::ReadFromHead, read_of(&["y", "c"]));
        let order = assert_linearizable(&h).order;
        assert!(order.contains(&y) && !order.contains(&x));
    }

    #[test]
    fn gap_filled_by_no_known_append() {
        let mut h = History::new();
        h.invoke(Op::Append(append(&["x"])), 0);
        let c = run(&mut h, 5, 6, Op::Append(append(&["c"])), acked(1, 2));
        run(&mut h, 7, 8, Op::ReadFromHead, read_of(&["z", "c"]));
        let frontier = assert_not_linearizable(&h, c);
        assert!(frontier.to_string().contains("working back"), "{frontier}");
    }

    #[test]
    fn indeterminate_append_taking_acked_seq_nums() {
        let mut h = History::new();
        h.invoke(Op::Append(append(&["x"])), 0);
        run(&mut h, 1, 2, Op::Append(append(&["c"])), acked(0, 1));
        let read = run(&mut h, 3, 4, Op::ReadFromHead, read_of(&["x", "c"]));
        assert_not_linearizable(&h, read);
    }

    #[test]
    fn lost_ack() {
        let mut h = History::new();
        run(&mut h, 0, 1, Op::Append(append(&["a"])), acked(0, 1));
        let b = run(&mut h, 2, 3, Op::Append(append(&["b"])), acked(0, 1));
        run(&mut h, 4, 5, Op::ReadFromHead, read_of(&["b"]));
        assert_not_linearizable(&h, b);
    }

    #[test]
    fn append_applied_twice() {
        let mut h = History::new();
        run(&mut h, 0, 1, Op::Append(append(&["a"])), acked(0, 1));
        let read = run(&mut h, 2, 3, Op::ReadFromHead, read_of(&["a", "a"]));
        assert_not_linearizable(&h, read);
    }

    #[test]
    fn stale_read() {
        let mut h = History::new();
        run(&mut h, 0, 5, Op::Append(append(&["a"])), acked(0, 1));
        run(&mut h, 1, 4, Op::ReadFromHead, read_of(&[]));
        let read = run(&mut h, 6, 7, Op::ReadFromHead, read_of(&[]));
        let frontier = assert_not_linearizable(&h, read);
        let message = Violation::NotLinearizable(Box::new(frontier)).to_string();
        assert!(message.contains("already at 1"), "{message}");
    }

    #[test]
    fn overlapping_acked_ranges() {
        let mut h = History::new();
        run(&mut h, 0, 10, Op::Append(append(&["a", "b"])), acked(0, 2));
        run(&mut h, 1, 9, Op::Append(append(&["c", "d"])), acked(1, 3));
        assert!(matches!(check(&h), Err(Violation::NotLinearizable(_))));
    }

    #[test]
    fn acked_range_of_wrong_length() {
        let mut h = History::new();
        let a = run(&mut h, 0, 1, Op::Append(append(&["a", "b"])), acked(0, 3));
        assert_not_linearizable(&h, a);
    }

    #[test]
    fn seq_num_mismatch_with_wrong_next() {
        let mut h = History::new();
        run(&mut h, 0, 1, Op::Append(append(&["a"])), acked(0, 1));
        let conditional = append(&["b"]).with_match_seq_num(0);
        let rejected = run(
            &mut h,
            2,
            3,
            Op::Append(conditional),
            Outcome::SeqNumMismatch(2),
        );
        run(&mut h, 4, 5, Op::CheckTail, Outcome::Tail(1));
        assert_not_linearizable(&h, rejected);
    }

    #[test]
    fn seq_num_mismatch_although_match_holds() {
        let mut h = History::new();
        let conditional = append(&["a"]).with_match_seq_num(0);
        let rejected = run(
            &mut h,
            0,
            1,
            Op::Append(conditional),
            Outcome::SeqNumMismatch(0),
        );
        assert_not_linearizable(&h, rejected);
    }

    #[test]
    fn acked_despite_fencing_token_mismatch() {
        let mut h = History::new();
        run(&mut h, 0, 1, Op::Append(Append::fence("t1")), acked(0, 1));
        let stale = append(&["x"]).with_fencing_token("t0");
        let accepted = run(&mut h, 2, 3, Op::Append(stale), acked(1, 2));
        assert_not_linearizable(&h, accepted);
    }

    #[test]
    fn fencing_mismatch_reporting_wrong_token() {
        let mut h = History::new();
        run(&mut h, 0, 1, Op::Append(Append::fence("t1")), acked(0, 1));
        let stale = append(&["x"]).with_fencing_token("t0");
        let rejected = run(
            &mut h,
            2,
            3,
            Op::Append(stale),
            Outcome::FencingTokenMismatch("t9".into()),
        );
        run(&mut h, 4, 5, Op::Append(append(&["y"])), acked(1, 2));
        assert_not_linearizable(&h, rejected);
    }

    #[test]
    fn check_tail_going_backwards() {
        let mut h = History::new();
        run(&mut h, 0, 10, Op::Append(append(&["a"])), acked(0, 1));
        run(&mut h, 1, 2, Op::CheckTail, Outcome::Tail(1));
        let backwards = run(&mut h, 3, 4, Op::CheckTail, Outcome::Tail(0));
        assert_not_linearizable(&h, backwards);
    }

    #[test]
    fn indeterminate_append_seen_twice() {
        let mut h = History::new();
        h.invoke(Op::Append(append(&["a"])), 0);
        let read = run(&mut h, 1, 2, Op::ReadFromHead, read_of(&["a", "a"]));
        assert_not_linearizable(&h, read);
    }

    #[test]
    fn indeterminate_append_applied_before_its_invocation() {
        let mut h = History::new();
        let read = run(&mut h, 0, 1, Op::ReadFromHead, read_of(&["a"]));
        h.invoke(Op::Append(append(&["a"])), 2);
        assert_not_linearizable(&h, read);
    }

    #[test]
    fn malformed_histories() {
        let mut h = History::new();
        run(&mut h, 0, 1, Op::CheckTail, acked(0, 1));
        assert!(matches!(check(&h), Err(Violation::Malformed { .. })));

        let mut h = History::new();
        run(&mut h, 0, 1, Op::Append(append(&[])), acked(0, 0));
        assert!(matches!(check(&h), Err(Violation::Malformed { .. })));

        let mut h = History::new();
        let fence = Append {
            set_fence: Some("t1".into()),
            ..append(&["not the token"])
        };
        run(&mut h, 0, 1, Op::Append(fence), acked(0, 1));
        assert!(matches!(check(&h), Err(Violation::Malformed { .. })));

        let mut h = History::new();
        run(&mut h, 5, 4, Op::CheckTail, Outcome::Tail(0));
        assert!(matches!(check(&h), Err(Violation::Malformed { .. })));
    }

    #[test]
    fn search_gives_up_beyond_its_budget() {
        let mut h = History::new();
        let bodies = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"];
        for body in bodies {
            h.invoke(Op::Append(append(&[body])), 0);
        }
        let impossible = Outcome::Read {
            count: bodies.len() as u64,
            hash: 0xbad,
        };
        run(&mut h, 1, 2, Op::ReadFromHead, impossible);
        match check_with_budget(&h, 10_000) {
            Err(violation @ Violation::TooExpensive { .. }) => {
                assert!(violation.to_string().contains("too expensive"));
            }
            other => panic!("expected to give up, got {other:?}"),
        }
    }

    /// A correct stream behind a mutex: each operation takes effect at one instant between
    /// its invocation and its response.
    #[derive(Default)]
    struct SimStream {
        records: Vec<Bytes>,
        hash: u64,
        token: String,
    }

    impl SimStream {
        fn serve(&mut self, op: &Op) -> Outcome {
            let tail = self.records.len() as u64;
            match op {
                Op::Append(append) => {
                    if let Some(token) = &append.fencing_token
                        && *token != self.token
                    {
                        return Outcome::FencingTokenMismatch(self.token.clone());
                    }
                    if let Some(seq_num) = append.match_seq_num
                        && seq_num != tail
                    {
                        return Outcome::SeqNumMismatch(tail);
                    }
                    for body in &append.bodies {
                        self.hash = chain_hash(self.hash, body);
                        self.records.push(body.clone());
                    }
                    if let Some(token) = &append.set_fence {
                        self.token = token.clone();
                    }
                    Outcome::Appended {
                        start: tail,
                        end: self.records.len() as u64,
                    }
                }
                Op::ReadFromHead => Outcome::Read {
                    count: tail,
                    hash: self.hash,
                },
                Op::CheckTail => Outcome::Tail(tail),
            }
        }
    }

    /// A client's belief about the stream, used to make conditional appends that sometimes
    /// succeed.
    #[derive(Default)]
    struct Knowledge {
        tail: u64,
        token: String,
    }

    impl Knowledge {
        fn learn(&mut self, op: &Op, outcome: &Outcome) {
            match outcome {
                Outcome::Appended { end: tail, .. }
                | Outcome::SeqNumMismatch(tail)
                | Outcome::Read { count: tail, .. }
                | Outcome::Tail(tail) => self.tail = *tail,
                Outcome::FencingTokenMismatch(token) => self.token = token.clone(),
                Outcome::Indeterminate => {}
            }
            if let (Op::Append(append), Outcome::Appended { .. }) = (op, outcome)
                && let Some(token) = &append.set_fence
            {
                self.token = token.clone();
            }
        }
    }

    /// A simulated client: its random choices and what it has learned about the stream.
    struct SimClient {
        id: usize,
        rng: StdRng,
        knowledge: Knowledge,
        issued: usize,
    }

    impl SimClient {
        fn new(id: usize, seed: u64) -> Self {
            Self {
                id,
                rng: StdRng::seed_from_u64(seed ^ id as u64),
                knowledge: Knowledge::default(),
                issued: 0,
            }
        }

        /// Half appends (some conditional on what the client believes, so that they fail
        /// now and then, and a few fences), a quarter reads, a quarter tail checks.
        fn next_op(&mut self) -> Op {
            let (client, index, rng) = (self.id, self.issued, &mut self.rng);
            self.issued += 1;
            match rng.random_range(0..100) {
                0..5 => {
                    let fence = Append::fence(format!("t{client}.{index}"));
                    Op::Append(if rng.random_bool(0.5) {
                        fence.with_fencing_token(self.knowledge.token.clone())
                    } else {
                        fence
                    })
                }
                5..55 => {
                    let records = rng.random_range(1..=3);
                    let bodies = (0..records).map(|record| format!("c{client}.{index}.{record}"));
                    let mut append = Append::new(bodies);
                    if rng.random_bool(0.25) {
                        append = append.with_match_seq_num(self.knowledge.tail);
                    }
                    if rng.random_bool(0.2) {
                        append = append.with_fencing_token(self.knowledge.token.clone());
                    }
                    Op::Append(append)
                }
                55..80 => Op::ReadFromHead,
                _ => Op::CheckTail,
            }
        }

        /// Whether a request reaches the stream and whether its response reaches the client:
        /// a fraction `loss` of the responses are lost, half of those after the request took
        /// effect.
        fn fate(&mut self, loss: f64) -> (bool, bool) {
            let answered = !self.rng.random_bool(loss);
            (answered || self.rng.random_bool(0.5), answered)
        }

        /// What the client records for a request: the stream's answer if it got one; if not,
        /// half the time an indeterminate outcome and otherwise nothing at all.
        fn response(
            &mut self,
            op: &Op,
            served: Option<Outcome>,
            answered: bool,
        ) -> Option<Outcome> {
            if answered {
                let outcome = served.expect("answered requests reached the stream");
                self.knowledge.learn(op, &outcome);
                Some(outcome)
            } else {
                self.rng.random_bool(0.5).then_some(Outcome::Indeterminate)
            }
        }

        fn pause(&mut self) {
            if self.rng.random_bool(0.5) {
                thread::yield_now();
            } else {
                thread::sleep(Duration::from_micros(self.rng.random_range(1..30)));
            }
        }
    }

    /// Runs `client_count` threads of `ops_per_client` operations each against a correct
    /// stream, losing 4% of the responses, then one quiescent read. Returns the history and
    /// the stream's records.
    fn simulate_threads(
        client_count: usize,
        ops_per_client: usize,
        seed: u64,
    ) -> (History, Vec<Bytes>) {
        let recorder = Recorder::new();
        let stream = Mutex::new(SimStream::default());
        thread::scope(|scope| {
            for id in 0..client_count {
                let (recorder, stream) = (recorder.clone(), &stream);
                scope.spawn(move || {
                    let mut client = SimClient::new(id, seed);
                    for _ in 0..ops_per_client {
                        let op = client.next_op();
                        let op_id = recorder.invoke(op.clone());
                        client.pause();
                        let (reaches_stream, answered) = client.fate(0.04);
                        let served = reaches_stream.then(|| stream.lock().serve(&op));
                        client.pause();
                        if let Some(response) = client.response(&op, served, answered) {
                            recorder.complete(op_id, response);
                        }
                    }
                });
            }
        });
        let id = recorder.invoke(Op::ReadFromHead);
        recorder.complete(id, stream.lock().serve(&Op::ReadFromHead));
        (recorder.history(), stream.into_inner().records)
    }

    /// A request's progress in [`simulate_interleaved`].
    enum Phase {
        Idle,
        Sent {
            id: OpId,
            op: Op,
        },
        Served {
            id: OpId,
            op: Op,
            served: Option<Outcome>,
            answered: bool,
        },
    }

    /// Like [`simulate_threads`], but on one thread with logical time, losing a fraction
    /// `loss` of the responses: each step moves one random client's request one phase on
    /// (sent, served, answered), so the history depends only on `seed` and about
    /// `client_count` requests overlap at any time.
    fn simulate_interleaved(
        client_count: usize,
        ops_per_client: usize,
        loss: f64,
        seed: u64,
    ) -> History {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut history = History::new();
        let mut stream = SimStream::default();
        let mut clients: Vec<(SimClient, Phase)> = (0..client_count)
            .map(|id| (SimClient::new(id, seed), Phase::Idle))
            .collect();
        let mut time = 0;
        while clients
            .iter()
            .any(|(client, phase)| client.issued < ops_per_client || !matches!(phase, Phase::Idle))
        {
            time += 1;
            let (client, phase) = &mut clients[rng.random_range(0..client_count)];
            *phase = match std::mem::replace(phase, Phase::Idle) {
                Phase::Idle if client.issued < ops_per_client => {
                    let op = client.next_op();
                    let id = history.invoke(op.clone(), time);
                    Phase::Sent { id, op }
                }
                Phase::Idle => Phase::Idle,
                Phase::Sent { id, op } => {
                    let (reaches_stream, answered) = client.fate(loss);
                    let served = reaches_stream.then(|| stream.serve(&op));
                    Phase::Served {
                        id,
                        op,
                        served,
                        answered,
                    }
                }
                Phase::Served {
                    id,
                    op,
                    served,
                    answered,
                } => {
                    if let Some(response) = client.response(&op, served, answered) {
                        history.complete(id, response, time);
                    }
                    Phase::Idle
                }
            };
        }
        let id = history.invoke(Op::ReadFromHead, time + 1);
        history.complete(id, stream.serve(&Op::ReadFromHead), time + 2);
        history
    }

    fn acked_appends(history: &History) -> Vec<usize> {
        (0..history.entries().len())
            .filter(|&index| {
                matches!(
                    history.entries()[index].completion,
                    Some(Completion {
                        outcome: Outcome::Appended { .. },
                        ..
                    })
                )
            })
            .collect()
    }

    fn assert_linearizable_timed(history: &History) {
        let started = Instant::now();
        let linearization = assert_linearizable(history);
        eprintln!(
            "checked {} operations in {:?}, exploring {} states",
            history.entries().len(),
            started.elapsed(),
            linearization.explored,
        );
    }

    #[test]
    fn simulated_history_is_accepted() {
        let (history, _) = simulate_threads(8, 250, 1);
        assert!(history.entries().len() > 2000);
        assert_linearizable_timed(&history);
    }

    #[test]
    fn interleaved_history_with_frequent_losses_is_accepted() {
        let history = simulate_interleaved(12, 170, 0.1, 7);
        assert!(history.entries().len() > 2000);
        assert_linearizable_timed(&history);
    }

    #[test]
    fn simulated_history_with_shifted_ack_is_rejected() {
        let (mut history, _) = simulate_threads(8, 250, 2);
        let acked = acked_appends(&history);
        let mut rng = StdRng::seed_from_u64(2);
        let victim = acked[rng.random_range(acked.len() / 4..acked.len() * 3 / 4)];
        let Some(Completion {
            outcome: Outcome::Appended { start, end },
            ..
        }) = &mut history.entries[victim].completion
        else {
            unreachable!("victim is an acked append");
        };
        *start += 1;
        *end += 1;
        let started = Instant::now();
        let result = check(&history);
        eprintln!("rejected in {:?}", started.elapsed());
        assert!(
            matches!(result, Err(Violation::NotLinearizable(_))),
            "{result:?}"
        );
    }

    #[test]
    fn simulated_history_with_dropped_record_is_rejected() {
        let (mut history, records) = simulate_threads(8, 250, 3);
        let mut rng = StdRng::seed_from_u64(3);
        let reads: Vec<usize> = (0..history.entries().len())
            .filter(|&index| {
                matches!(
                    history.entries()[index].completion,
                    Some(Completion {
                        outcome: Outcome::Read { count: 3.., .. },
                        ..
                    })
                )
            })
            .collect();
        let victim = reads[rng.random_range(reads.len() / 4..reads.len() * 3 / 4)];
        let Some(Completion {
            outcome: Outcome::Read { count, hash },
            ..
        }) = &mut history.entries[victim].completion
        else {
            unreachable!("victim is a read");
        };
        let seen = &records[..*count as usize];
        let dropped = rng.random_range(0..seen.len() - 1);
        *hash = hash_bodies(
            seen.iter()
                .enumerate()
                .filter(|&(index, _)| index != dropped)
                .map(|(_, body)| body),
        );
        *count -= 1;
        let result = check(&history);
        assert!(
            matches!(result, Err(Violation::NotLinearizable(_))),
            "{result:?}"
        );
    }
}
