//! One RESP connection's state and the commands that act on it — `HELLO`, `AUTH`, `PING`,
//! `ECHO`, `SELECT`, `CLIENT ID|GETNAME|SETNAME|SETINFO|HELP`, `COMMAND [COUNT|DOCS|INFO|
//! LIST|HELP]`, `INFO`, `QUIT`, `RESET` — with Redis 7.0's replies and error texts; the
//! stream commands go to [`crate::redis::execute`] unchanged.
//!
//! Logging in: the username of `AUTH <user> <pass>` (or `HELLO … AUTH`) is the plate, the
//! password an access token; `default` and the one-argument `AUTH <pass>` name the plate
//! given by `--redis-plate`. Without a root token any password is accepted, as the HTTP
//! surfaces accept any token. A connection is logged in from the start when no root
//! token is set and `--redis-plate` names its plate; otherwise commands other than
//! `AUTH`, `HELLO`, `QUIT` and `RESET` answer `NOAUTH Authentication required.` (after
//! Redis's existence and arity checks, which come first in Redis too).

use std::time::Instant;

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};

use super::{
    Shared,
    codec::Protocol,
    table::{self, Spec},
};
use crate::{
    engine::EngineError,
    http::{
        AuthError,
        auth::{Caller, Scheme, TOKEN_CACHE_TTL},
    },
    redis::{Context, RedisError, Reply, Started, cmd::is, execute, start},
};

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
const NOAUTH: &str = "NOAUTH Authentication required.";

/// What a command leaves the connection to do.
pub struct Answer {
    /// The reply, or an error's text (without the `-`); `None` sends nothing.
    pub reply: Option<Result<Reply, String>>,
    /// Close the connection once the reply is written (`QUIT`); with no reply, at once,
    /// replies not yet written dropped too (as Redis frees such a client).
    pub close: bool,
}

impl Answer {
    fn reply(reply: Reply) -> Self {
        Self {
            reply: Some(Ok(reply)),
            close: false,
        }
    }

    fn error(text: impl Into<String>) -> Self {
        Self {
            reply: Some(Err(text.into())),
            close: false,
        }
    }

    fn close() -> Self {
        Self {
            reply: None,
            close: true,
        }
    }
}

/// A command begun by [`Session::start`].
pub enum Step {
    /// Answered already.
    Done(Answer),
    /// Under way; the answer needs nothing more from the connection, and the commands
    /// after it may begin meanwhile.
    Later(BoxFuture<'static, Answer>),
    /// Must run through [`Session::run`] once every command before it has been answered;
    /// nothing was done.
    Alone,
}

/// Who a connection is logged in as.
struct Login {
    plate: String,
    caller: Caller,
    /// The token it showed (`None` when the node asks for none), re-checked every
    /// [`TOKEN_CACHE_TTL`] so that a revoked or expired token stops working on an open
    /// connection as soon as it would on HTTP.
    token: Option<String>,
    checked: Instant,
}

impl Login {
    /// The token as an `Authorization` value, as a forwarded command carries it.
    fn credential(&self) -> Option<HeaderValue> {
        let token = self.token.as_deref()?;
        HeaderValue::from_str(&format!("Bearer {token}")).ok()
    }
}

/// A connection's state.
pub struct Session {
    pub id: u64,
    pub protocol: Protocol,
    name: Option<Bytes>,
    login: Option<Login>,
}

impl Session {
    pub async fn new(shared: &Shared, id: u64) -> Self {
        let mut session = Self {
            id,
            protocol: Protocol::Resp2,
            name: None,
            login: None,
        };
        session.login = default_login(shared).await;
        session
    }

    /// Whether the connection may run commands (and send requests beyond the
    /// unauthenticated bounds of [`super::codec`]).
    pub fn authenticated(&self) -> bool {
        self.login.is_some()
    }

    /// Runs one command (`argv` is not empty).
    pub async fn run(&mut self, shared: &Shared, argv: &[Bytes]) -> Answer {
        let name = &argv[0];
        // Redis drops a connection whose command is `POST` or `Host:`: an HTTP request
        // sent to it by a browser tricked into it (cross-protocol scripting).
        if is(name, "post") || is(name, "host:") {
            return Answer::close();
        }
        let spec = match table::lookup(argv) {
            Ok(spec) => spec,
            Err(text) => return Answer::error(text),
        };
        if self.login.is_none() && !spec.flags.contains(&"no_auth") {
            return Answer::error(NOAUTH);
        }
        if let Some(close) = self.recheck(shared).await {
            return close;
        }
        match spec.name.split('|').next().unwrap_or_default() {
            "auth" => self.auth(shared, argv).await,
            "hello" => self.hello(shared, argv).await,
            "ping" => match argv.len() {
                1 => Answer::reply(Reply::Simple("PONG")),
                2 => Answer::reply(Reply::Bulk(argv[1].clone())),
                _ => Answer::error(arity("ping")),
            },
            "echo" => Answer::reply(Reply::Bulk(argv[1].clone())),
            "select" => select(&argv[1]),
            "client" => self.client(spec, argv),
            "command" => command(spec, argv),
            "info" => Answer::reply(super::info::reply(shared, &argv[1..])),
            "quit" => Answer {
                reply: Some(Ok(Reply::ok())),
                close: true,
            },
            "reset" => {
                self.protocol = Protocol::Resp2;
                self.name = None;
                self.login = default_login(shared).await;
                Answer::reply(Reply::Simple("RESET"))
            }
            _ => self.stream_command(shared, argv).await,
        }
    }

    /// Begins a command that may overlap the ones after it ([`crate::redis::start`]):
    /// only when the connection is logged in with a token that needs no re-check, so
    /// that every other path (`NOAUTH`, a revoked token, unknown commands) stays in
    /// [`Session::run`].
    pub async fn start(&mut self, shared: &Shared, argv: &[Bytes]) -> Step {
        let Some(login) = &self.login else {
            return Step::Alone;
        };
        if login.checked.elapsed() >= TOKEN_CACHE_TTL || table::lookup(argv).is_err() {
            return Step::Alone;
        }
        let ctx = Context {
            engine: shared.engine.clone(),
            caller: login.caller.clone(),
            plate: login.plate.clone(),
            max_block: None,
            homes: shared.homes.clone(),
            credential: login.credential(),
        };
        match start(&ctx, argv).await {
            None => Step::Alone,
            Some(Ok(Started::Now(reply))) => Step::Done(Answer::reply(reply)),
            Some(Ok(Started::Later(reply))) => {
                // Only the name matters to an error's text once the command parsed.
                let argv = argv[..1].to_vec();
                Step::Later(Box::pin(async move {
                    match reply.await {
                        Ok(reply) => Answer::reply(reply),
                        Err(e) => Answer::error(error_text(e, &argv)),
                    }
                }))
            }
            Some(Err(e)) => Step::Done(Answer::error(error_text(e, argv))),
        }
    }

    /// Re-checks the login's token once its last check is older than the token cache's
    /// lifetime. A token no longer valid closes the connection, as Redis closes the
    /// connections of a user that is deleted; the client's next `AUTH` gets `WRONGPASS`.
    async fn recheck(&mut self, shared: &Shared) -> Option<Answer> {
        let login = self.login.as_mut()?;
        if login.checked.elapsed() < TOKEN_CACHE_TTL {
            return None;
        }
        match authenticate(shared, login.token.as_deref()).await {
            Ok(caller) => {
                login.caller = caller;
                login.checked = Instant::now();
                None
            }
            Err(AuthError::Engine(e)) => Some(Answer::error(format!("ERR {e}"))),
            Err(_) => Some(Answer::close()),
        }
    }

    async fn stream_command(&mut self, shared: &Shared, argv: &[Bytes]) -> Answer {
        let Some(login) = &self.login else {
            return Answer::error(NOAUTH);
        };
        let ctx = Context {
            engine: shared.engine.clone(),
            caller: login.caller.clone(),
            plate: login.plate.clone(),
            // A RESP client waits as long as it asked to; a blocked read ends when data
            // comes, its timeout passes, or the connection closes (see `super`).
            max_block: None,
            homes: shared.homes.clone(),
            credential: login.credential(),
        };
        match execute(&ctx, argv).await {
            Ok(reply) => Answer::reply(reply),
            Err(e) => Answer::error(error_text(e, argv)),
        }
    }

    /// `AUTH [user] password`.
    async fn auth(&mut self, shared: &Shared, argv: &[Bytes]) -> Answer {
        let (user, pass) = match argv {
            [_, pass] => (&b"default"[..], pass),
            [_, user, pass] => (&user[..], pass),
            _ => return Answer::error("ERR syntax error"),
        };
        match login(shared, user, pass).await {
            Ok(login) => {
                self.login = Some(login);
                Answer::reply(Reply::ok())
            }
            Err(text) => Answer::error(text),
        }
    }

    /// `HELLO [protover [AUTH user pass] [SETNAME name]]`, as Redis 7.0 reads it: options
    /// apply in order (an `AUTH` before a bad option stays done).
    async fn hello(&mut self, shared: &Shared, argv: &[Bytes]) -> Answer {
        let mut protocol = None;
        if let Some(ver) = argv.get(1) {
            match crate::redis::ids::canonical_i64(ver) {
                None => {
                    return Answer::error("ERR Protocol version is not an integer or out of range");
                }
                Some(2) => protocol = Some(Protocol::Resp2),
                Some(3) => protocol = Some(Protocol::Resp3),
                Some(_) => return Answer::error("NOPROTO unsupported protocol version"),
            }
        }
        let mut j = 2;
        while j < argv.len() {
            let more = argv.len() - 1 - j;
            let opt = &argv[j];
            if is(opt, "auth") && more >= 2 {
                match login(shared, &argv[j + 1], &argv[j + 2]).await {
                    Ok(login) => self.login = Some(login),
                    Err(text) => return Answer::error(text),
                }
                j += 3;
            } else if is(opt, "setname") && more >= 1 {
                if let Err(text) = self.set_name(&argv[j + 1]) {
                    return Answer::error(text);
                }
                j += 2;
            } else {
                return Answer::error(format!(
                    "ERR Syntax error in HELLO option '{}'",
                    crate::redis::cmd::shown(opt, usize::MAX)
                ));
            }
        }
        if self.login.is_none() {
            return Answer::error(
                "NOAUTH HELLO must be called with the client already authenticated, \
                 otherwise the HELLO AUTH <user> <pass> option can be used to authenticate \
                 the client and select the RESP protocol version at the same time",
            );
        }
        if let Some(p) = protocol {
            self.protocol = p;
        }
        let proto = if self.protocol == Protocol::Resp3 {
            3
        } else {
            2
        };
        Answer::reply(Reply::map([
            ("server", Reply::text("redis")),
            ("version", Reply::text(super::REDIS_VERSION)),
            ("proto", Reply::Int(proto)),
            ("id", Reply::int(self.id)),
            ("mode", Reply::text("standalone")),
            ("role", Reply::text("master")),
            ("modules", Reply::Array(vec![])),
        ]))
    }

    fn client(&mut self, spec: &Spec, argv: &[Bytes]) -> Answer {
        match spec.name {
            "client|id" => Answer::reply(Reply::int(self.id)),
            "client|getname" => Answer::reply(self.name.clone().map_or(Reply::Nil, Reply::Bulk)),
            "client|setname" => match self.set_name(&argv[2]) {
                Ok(()) => Answer::reply(Reply::ok()),
                Err(text) => Answer::error(text),
            },
            "client|setinfo" => {
                let attr = &argv[2];
                if !is(attr, "lib-name") && !is(attr, "lib-ver") {
                    return Answer::error(format!(
                        "ERR Unrecognized option '{}'",
                        crate::redis::cmd::shown(attr, usize::MAX)
                    ));
                }
                if !printable(&argv[3]) {
                    return Answer::error(format!(
                        "ERR {} cannot contain spaces, newlines or special characters.",
                        crate::redis::cmd::shown(attr, usize::MAX)
                    ));
                }
                Answer::reply(Reply::ok())
            }
            _ => help(&[
                "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GETNAME",
                "    Return the name of the current connection.",
                "ID",
                "    Return the ID of the current connection.",
                "SETINFO <option> <value>",
                "    Set client meta attr. Options are:",
                "    * LIB-NAME: the client lib name.",
                "    * LIB-VER: the client lib version.",
                "SETNAME <name>",
                "    Assign the name <name> to the current connection.",
                "HELP",
                "    Print this help.",
            ]),
        }
    }

    /// `CLIENT SETNAME` and `HELLO … SETNAME`: printable ASCII without spaces; empty
    /// clears the name.
    fn set_name(&mut self, name: &Bytes) -> Result<(), String> {
        if name.is_empty() {
            self.name = None;
        } else if printable(name) {
            self.name = Some(name.clone());
        } else {
            return Err(
                "ERR Client names cannot contain spaces, newlines or special characters.".into(),
            );
        }
        Ok(())
    }
}

/// Characters `!` to `~` only, as Redis checks client names.
fn printable(text: &[u8]) -> bool {
    text.iter().all(|b| (b'!'..=b'~').contains(b))
}

fn arity(name: &str) -> String {
    format!("ERR wrong number of arguments for '{name}' command")
}

fn select(db: &[u8]) -> Answer {
    match crate::redis::ids::canonical_i64(db) {
        None => Answer::error("ERR value is not an integer or out of range"),
        Some(n) if i32::try_from(n).is_err() => Answer::error(
            "ERR value is out of range, value must between -2147483648 and 2147483647",
        ),
        Some(0) => Answer::reply(Reply::ok()),
        // Each plate is one key space: database 0.
        Some(_) => Answer::error("ERR DB index is out of range"),
    }
}

fn command(spec: &Spec, argv: &[Bytes]) -> Answer {
    let all = table::COMMANDS.iter();
    match spec.name {
        "command" => Answer::reply(Reply::Array(all.map(table::info).collect())),
        "command|count" => Answer::reply(Reply::int(table::COMMANDS.len())),
        "command|info" if argv.len() == 2 => {
            Answer::reply(Reply::Array(all.map(table::info).collect()))
        }
        "command|info" => Answer::reply(Reply::Array(
            argv[2..]
                .iter()
                .map(|n| table::find_by_full_name(n).map_or(Reply::Nil, table::info))
                .collect(),
        )),
        "command|docs" => {
            let specs: Vec<&Spec> = if argv.len() == 2 {
                all.collect()
            } else {
                argv[2..]
                    .iter()
                    .filter_map(|n| table::find_by_full_name(n))
                    .collect()
            };
            Answer::reply(Reply::map(
                specs.into_iter().map(|s| (s.name, table::docs(s))),
            ))
        }
        "command|list" if argv.len() == 2 => {
            Answer::reply(Reply::Array(all.map(|s| Reply::text(s.name)).collect()))
        }
        "command|list" => Answer::error("ERR syntax error"),
        _ => help(&[
            "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "(no subcommand)",
            "    Return details about all Redis commands.",
            "COUNT",
            "    Return the total number of commands in this Redis server.",
            "LIST",
            "    Return a list of all commands in this Redis server.",
            "INFO [<command-name> ...]",
            "    Return details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "DOCS [<command-name> ...]",
            "    Return documentation details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "HELP",
            "    Print this help.",
        ]),
    }
}

/// A `HELP` reply: one status line each, as Redis's `addReplyHelp`.
fn help(lines: &'static [&'static str]) -> Answer {
    Answer::reply(Reply::Array(
        lines.iter().map(|l| Reply::Simple(l)).collect(),
    ))
}

/// The login a connection starts with: the `--redis-plate` plate when the node asks for
/// no token, else none.
async fn default_login(shared: &Shared) -> Option<Login> {
    if shared.auth_required {
        return None;
    }
    let plate = shared.config.plate.clone()?;
    let caller = authenticate(shared, None).await.ok()?;
    Some(Login {
        plate,
        caller,
        token: None,
        checked: Instant::now(),
    })
}

/// Logs in as `user` (a plate, or `default` for `--redis-plate`'s) with the access token
/// `pass`. An unknown plate is `WRONGPASS`, as Redis answers for a user that does not
/// exist (it does not tell a missing user from a wrong password); so are a malformed
/// name and a token the node does not accept. A store that fails is `ERR`.
async fn login(shared: &Shared, user: &[u8], pass: &[u8]) -> Result<Login, String> {
    let plate = if user == b"default" {
        shared.config.plate.clone()
    } else {
        std::str::from_utf8(user)
            .ok()
            .map(|u| u.strip_prefix('$').unwrap_or(u).to_owned())
    };
    let plate = plate
        .filter(|p| p.parse::<s2_common::basin::BasinName>().is_ok())
        .ok_or(WRONGPASS)?;
    let token = std::str::from_utf8(pass).map_err(|_| WRONGPASS)?;
    let caller = match authenticate(shared, Some(token)).await {
        Ok(caller) => caller,
        Err(AuthError::Engine(e)) => return Err(format!("ERR {e}")),
        Err(_) => return Err(WRONGPASS.into()),
    };
    match shared.engine.basin_entry(&plate).await {
        Ok(entry) if entry.deleted_at.is_none() => {}
        Ok(_) | Err(EngineError::BasinNotFound(_)) => return Err(WRONGPASS.into()),
        Err(e) => return Err(format!("ERR {e}")),
    }
    Ok(Login {
        plate,
        caller,
        token: shared.auth_required.then(|| token.to_owned()),
        checked: Instant::now(),
    })
}

/// The caller a token names, through the same authenticator (and token cache) as the
/// HTTP surfaces.
async fn authenticate(shared: &Shared, token: Option<&str>) -> Result<Caller, AuthError> {
    let mut headers = HeaderMap::new();
    if let Some(token) = token {
        let value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| AuthError::InvalidToken("invalid access token".into()))?;
        headers.insert(AUTHORIZATION, value);
    }
    shared
        .auth
        .authenticate(&headers, Scheme::BearerOrBare)
        .await
}

/// A stream command's error as a RESP error's text. Redis's own errors go as they are;
/// the service's errors take the nearest Redis words: a token refused is `WRONGPASS`,
/// a missing one `NOAUTH`, an operation the token does not grant `NOPERM` (with which
/// one), a plate that no longer exists and a failing store `ERR`.
fn error_text(e: RedisError, argv: &[Bytes]) -> String {
    match e {
        RedisError::Reply(text) => text,
        RedisError::Unsupported(_) => table::unknown_command(argv),
        RedisError::MissingAuthorization(_) => NOAUTH.into(),
        RedisError::InvalidAuthorization(_) => WRONGPASS.into(),
        RedisError::PermissionDenied(m) => format!("NOPERM {m}"),
        RedisError::PlateNotFound(m) | RedisError::Unavailable(m) => format!("ERR {m}"),
    }
}
