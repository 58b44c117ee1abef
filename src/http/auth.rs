//! Who is calling and what they may do: S2's access tokens and scope model, for both HTTP
//! surfaces. The S2 surface takes a token as `Authorization: Bearer <token>`
//! ([`Scheme::Bearer`]); the plate surface also takes the bare `Authorization: <token>`
//! ([`Scheme::BearerOrBare`]). Failures are [`AuthError`]s, which each surface renders in
//! its own envelope.
//!
//! Authentication is on when the node has a root token (`--root-token`). Without one every
//! request may do everything and `Authorization` is ignored, as with `s2 lite`. The root
//! token may do everything and never expires; other tokens are issued through the S2 API
//! and stored in the bucket.
//!
//! An issued secret is `<hex of the token id>.<64 hex digits from the system CSPRNG>`, so
//! its entry is one read by id away; the bucket keeps only the secret's SHA-256. Nodes
//! cache entries for [`TOKEN_CACHE_TTL`]: a revocation takes effect on the node that made
//! it at once and on the others within that time. A secret that does not match a cached
//! entry is checked once more against the bucket, so a token issued under a reused id
//! works everywhere at once.
//!
//! Operation groups grant the operations on the resource they name: S2 documents the groups
//! only by example, so [`group_ops`] is the one place that decides.

use std::{sync::Arc, time::Duration};

use enumset::EnumSet;
use http::{HeaderMap, header::AUTHORIZATION};
use ring::rand::SecureRandom;
use s2_common::access::{
    AccessTokenScope, Operation, PermittedOperationGroups, ReadWritePermissions, ResourceSet,
};
use time::OffsetDateTime;
use tracing::warn;

pub use super::error::AuthError;
use crate::engine::{AccessTokenEntry, Command, Engine, RecordBatch};

/// How long a node trusts its copy of a token entry (or of its absence).
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(5);

/// Checks bearer tokens; cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    root_sha256: Option<Digest>,
    unrestricted: Caller,
    /// Token id to its stored entry, or to `None` when there is no such token.
    tokens: moka::future::Cache<String, Option<Arc<StoredToken>>>,
}

type Digest = [u8; 32];

struct StoredToken {
    secret_sha256: Digest,
    caller: Caller,
}

impl Authenticator {
    /// With `root_token`, every request must carry a valid token; without, none need to.
    pub fn new(engine: Engine, root_token: Option<&str>) -> Self {
        Self {
            inner: Arc::new(Inner {
                engine,
                root_sha256: root_token.map(|t| sha256(t.as_bytes())),
                unrestricted: Caller(Arc::new(Grant::unrestricted())),
                tokens: moka::future::Cache::builder()
                    .max_capacity(100_000)
                    .time_to_live(TOKEN_CACHE_TTL)
                    .build(),
            }),
        }
    }

    /// Whether callers need a token (the node has a root token).
    pub fn required(&self) -> bool {
        self.inner.root_sha256.is_some()
    }

    /// The caller a request's `Authorization` header names, given as `scheme` allows: an
    /// error when a token is required and this one is missing, malformed, unknown, revoked
    /// or expired.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        scheme: Scheme,
    ) -> Result<Caller, AuthError> {
        let Some(root) = &self.inner.root_sha256 else {
            return Ok(self.inner.unrestricted.clone());
        };
        let secret = scheme.token(headers)?;
        // Digests, not secrets, are compared: how long a comparison takes tells nothing
        // about a secret.
        let digest = sha256(secret.as_bytes());
        if &digest == root {
            return Ok(self.inner.unrestricted.clone());
        }
        let id = token_id(secret).ok_or_else(invalid_token)?;
        let mut stored = self.cached(&id).await?;
        if stored.as_ref().is_some_and(|s| s.secret_sha256 != digest) {
            // The copy may predate a token issued since under the same id.
            self.inner.tokens.invalidate(&id).await;
            stored = self.cached(&id).await?;
        }
        let stored = stored
            .filter(|s| s.secret_sha256 == digest)
            .ok_or_else(invalid_token)?;
        if stored
            .caller
            .expires_at
            .is_some_and(|t| t <= self.inner.engine.clock().now())
        {
            return Err(AuthError::InvalidToken("access token has expired".into()));
        }
        Ok(stored.caller.clone())
    }

    async fn cached(&self, id: &str) -> Result<Option<Arc<StoredToken>>, AuthError> {
        self.inner
            .tokens
            .try_get_with(id.to_owned(), self.load(id.to_owned()))
            .await
            .map_err(|e| AuthError::Engine((*e).clone()))
    }

    async fn load(
        &self,
        id: String,
    ) -> Result<Option<Arc<StoredToken>>, crate::engine::EngineError> {
        let Some(entry) = self.inner.engine.access_token(&id).await? else {
            return Ok(None);
        };
        match StoredToken::from_entry(&entry) {
            Ok(stored) => Ok(Some(Arc::new(stored))),
            Err(e) => {
                warn!(id, error = %e, "unusable access token entry");
                Ok(None)
            }
        }
    }

    /// Forgets this node's copy of a token entry, after issuing or revoking it here.
    pub async fn forget(&self, id: &str) {
        self.inner.tokens.invalidate(id).await;
    }
}

impl StoredToken {
    fn from_entry(entry: &AccessTokenEntry) -> Result<Self, String> {
        let digest = decode_hex(&entry.secret_sha256)
            .and_then(|d| Digest::try_from(d).ok())
            .ok_or("secret digest is not 32 bytes of hex")?;
        let info = &entry.info;
        let scope: AccessTokenScope = info.scope.clone().try_into().map_err(|e| format!("{e}"))?;
        Ok(Self {
            secret_sha256: digest,
            caller: Caller(Arc::new(Grant::new(
                scope,
                info.expires_at,
                info.auto_prefix_streams,
            )?)),
        })
    }
}

fn invalid_token() -> AuthError {
    AuthError::InvalidToken("invalid access token".into())
}

/// How a request may present its token in `Authorization`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// `Bearer <token>` (the S2 surface).
    Bearer,
    /// `Bearer <token>` or the bare `<token>` (the plate surface).
    BearerOrBare,
}

impl Scheme {
    fn token(self, headers: &HeaderMap) -> Result<&str, AuthError> {
        let Some(value) = headers.get(AUTHORIZATION) else {
            return Err(AuthError::MissingToken(
                match self {
                    Self::Bearer => "an access token is required: `Authorization: Bearer <token>`",
                    Self::BearerOrBare => "an access token is required: `Authorization: <token>`",
                }
                .into(),
            ));
        };
        let value = value.to_str().ok().map(str::trim);
        let token = match self {
            Self::Bearer => value.and_then(|v| v.strip_prefix("Bearer ")),
            Self::BearerOrBare => value.map(|v| v.strip_prefix("Bearer ").unwrap_or(v)),
        };
        token
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                AuthError::InvalidToken(
                    match self {
                        Self::Bearer => "`Authorization` must be `Bearer <token>`",
                        Self::BearerOrBare => {
                            "`Authorization` must be `<token>` or `Bearer <token>`"
                        }
                    }
                    .into(),
                )
            })
    }
}

/// A new secret for the token `id`, and the digest the bucket keeps of it.
pub fn new_secret(id: &str) -> (String, String) {
    let mut random = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut random)
        .expect("the system CSPRNG is available");
    let secret = format!("{}.{}", encode_hex(id.as_bytes()), encode_hex(&random));
    let digest = encode_hex(&sha256(secret.as_bytes()));
    (secret, digest)
}

/// The digest the bucket keeps of a secret chosen outside the node (an init file's), which
/// must have [`new_secret`]'s shape and name `id`: that is how a request's secret finds
/// its entry.
pub fn declared_secret_digest(id: &str, secret: &str) -> Result<String, String> {
    let random_is_hex = secret
        .split_once('.')
        .is_some_and(|(_, random)| decode_hex(random).is_some());
    if token_id(secret).as_deref() != Some(id) || !random_is_hex {
        return Err(format!(
            "the secret of access token {id:?} must be `<the id in hex>.<64 hex digits>`, \
             i.e. `{}.` followed by 32 random bytes in hex",
            encode_hex(id.as_bytes())
        ));
    }
    Ok(encode_hex(&sha256(secret.as_bytes())))
}

/// The token id a secret names, if it has the shape [`new_secret`] gives.
fn token_id(secret: &str) -> Option<String> {
    let (id, random) = secret.split_once('.')?;
    if random.len() != 64 {
        return None;
    }
    String::from_utf8(decode_hex(id)?).ok()
}

fn sha256(bytes: &[u8]) -> Digest {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub struct Caller(Arc<Grant>);

impl std::ops::Deref for Caller {
    type Target = Grant;

    fn deref(&self) -> &Grant {
        &self.0
    }
}

/// What a token may do: operations, the resources they may touch, and until when.
#[derive(Debug)]
pub struct Grant {
    pub expires_at: Option<OffsetDateTime>,
    /// `scope.ops` with the operations of `scope.op_groups` added.
    pub ops: EnumSet<Operation>,
    pub scope: AccessTokenScope,
    /// With `auto_prefix_streams`, the prefix stream names in requests gain and names in
    /// responses lose.
    pub stream_prefix: Option<String>,
}

/// What a listing may return: names under `prefix`, and with `only` just that one.
#[derive(Debug, PartialEq)]
pub struct Narrowed {
    pub prefix: String,
    pub only: Option<String>,
}

impl Narrowed {
    /// Cuts a page listed under `prefix` down to `only`, if set; whether more may follow.
    pub fn cut<T>(&self, entries: &mut Vec<T>, has_more: bool, name: impl Fn(&T) -> &str) -> bool {
        match &self.only {
            Some(only) => {
                entries.retain(|e| name(e) == only);
                false
            }
            None => has_more,
        }
    }
}

impl Grant {
    fn unrestricted() -> Self {
        Self {
            expires_at: None,
            ops: EnumSet::all(),
            scope: AccessTokenScope {
                basins: ResourceSet::Prefix(Default::default()),
                streams: ResourceSet::Prefix(Default::default()),
                access_tokens: ResourceSet::Prefix(Default::default()),
                op_groups: PermittedOperationGroups::default(),
                ops: EnumSet::all(),
            },
            stream_prefix: None,
        }
    }

    /// A token's grant; its scope must permit some operation, and auto-prefixing needs a
    /// stream prefix.
    pub fn new(
        scope: AccessTokenScope,
        expires_at: Option<OffsetDateTime>,
        auto_prefix_streams: bool,
    ) -> Result<Self, String> {
        let ops = scope.ops | group_ops(&scope.op_groups);
        if ops.is_empty() {
            return Err("the token's scope permits no operation".into());
        }
        let stream_prefix = match (&scope.streams, auto_prefix_streams) {
            (_, false) => None,
            (ResourceSet::Prefix(p), true) => Some(p.to_string()),
            (_, true) => {
                return Err("`auto_prefix_streams` needs the stream scope to be a prefix".into());
            }
        };
        Ok(Self {
            expires_at,
            ops,
            scope,
            stream_prefix,
        })
    }

    /// [`AuthError::PermissionDenied`] unless the operation is granted.
    pub fn may(&self, op: Operation) -> Result<(), AuthError> {
        if self.ops.contains(op) {
            Ok(())
        } else {
            Err(denied(format!(
                "the access token may not `{}`",
                op_name(op)
            )))
        }
    }

    pub fn may_on_basin(&self, op: Operation, basin: &str) -> Result<(), AuthError> {
        self.may(op)?;
        if !covers(&self.scope.basins, basin) {
            return Err(denied(format!(
                "the access token does not cover basin `{basin}`"
            )));
        }
        Ok(())
    }

    /// The stream a request names, as stored (auto-prefixed), if `op` is granted on it.
    pub fn may_on_stream(
        &self,
        op: Operation,
        basin: &str,
        stream: &str,
    ) -> Result<String, AuthError> {
        self.may_on_basin(op, basin)?;
        let stream = self.stored_stream_name(stream)?;
        if !covers(&self.scope.streams, &stream) {
            return Err(denied(format!(
                "the access token does not cover stream `{stream}`"
            )));
        }
        Ok(stream)
    }

    pub fn may_on_token(&self, op: Operation, id: &str) -> Result<(), AuthError> {
        self.may(op)?;
        if !covers(&self.scope.access_tokens, id) {
            return Err(denied(format!(
                "the access token does not cover access token `{id}`"
            )));
        }
        Ok(())
    }

    /// `fence` and `trim` command records need their own operations.
    pub fn may_run_commands(&self, batch: &RecordBatch) -> Result<(), AuthError> {
        if self.ops.is_superset(Operation::Fence | Operation::Trim) {
            return Ok(());
        }
        batch
            .records()
            .iter()
            .filter_map(|r| r.command.as_ref())
            .try_for_each(|c| match c {
                Command::Fence(_) => self.may(Operation::Fence),
                Command::Trim(_) => self.may(Operation::Trim),
            })
    }

    /// A stream name from a request as stored: with the auto-prefix, if any.
    pub fn stored_stream_name(&self, name: &str) -> Result<String, AuthError> {
        let Some(prefix) = &self.stream_prefix else {
            return Ok(name.to_owned());
        };
        let full = format!("{prefix}{name}");
        full.parse::<s2_common::stream::StreamName>().map_err(|e| {
            AuthError::InvalidName(format!("stream name with the token's prefix: {e}"))
        })?;
        Ok(full)
    }

    /// A stored stream name as a response shows it: without the auto-prefix, if any.
    pub fn shown_stream_name<'a>(&self, name: &'a str) -> &'a str {
        match &self.stream_prefix {
            Some(p) => name.strip_prefix(p.as_str()).unwrap_or(name),
            None => name,
        }
    }

    pub fn basins_listing(&self, prefix: &str) -> Option<Narrowed> {
        narrow(&self.scope.basins, prefix)
    }

    pub fn streams_listing(&self, prefix: &str) -> Option<Narrowed> {
        narrow(&self.scope.streams, prefix)
    }

    pub fn tokens_listing(&self, prefix: &str) -> Option<Narrowed> {
        narrow(&self.scope.access_tokens, prefix)
    }

    /// Whether every operation and resource `other` grants is granted here too, and it
    /// expires no later.
    pub fn includes(&self, other: &Grant) -> bool {
        self.ops.is_superset(other.ops)
            && within(&other.scope.basins, &self.scope.basins)
            && within(&other.scope.streams, &self.scope.streams)
            && within(&other.scope.access_tokens, &self.scope.access_tokens)
            && match (self.expires_at, other.expires_at) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(mine), Some(theirs)) => theirs <= mine,
            }
    }
}

fn denied(message: String) -> AuthError {
    AuthError::PermissionDenied(message)
}

/// The operation's name on the wire (`append`, `list-basins`, …).
fn op_name(op: Operation) -> String {
    serde_json::to_value(s2_api::v1::access::Operation::from(op))
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{op:?}"))
}

/// The operations a token's groups grant, by the resource each operation acts on:
/// account (basins, tokens, locations, account metrics), basin (its config, its list of
/// streams, its metrics), stream (its config, records, commands, existence, metrics).
pub fn group_ops(groups: &PermittedOperationGroups) -> EnumSet<Operation> {
    use Operation::*;
    let pick = |p: ReadWritePermissions, read: EnumSet<Operation>, write: EnumSet<Operation>| {
        let mut ops = EnumSet::empty();
        if p.read {
            ops |= read;
        }
        if p.write {
            ops |= write;
        }
        ops
    };
    pick(
        groups.account,
        ListBasins | ListAccessTokens | AccountMetrics | ListLocations | GetDefaultLocation,
        CreateBasin | DeleteBasin | IssueAccessToken | RevokeAccessToken | SetDefaultLocation,
    ) | pick(
        groups.basin,
        GetBasinConfig | ListStreams | BasinMetrics,
        EnumSet::only(ReconfigureBasin),
    ) | pick(
        groups.stream,
        GetStreamConfig | CheckTail | Read | StreamMetrics,
        CreateStream | DeleteStream | ReconfigureStream | Append | Trim | Fence,
    )
}

fn covers<E: AsRef<str>, P: AsRef<str>>(set: &ResourceSet<E, P>, name: &str) -> bool {
    match set {
        ResourceSet::None => false,
        ResourceSet::Exact(e) => e.as_ref() == name,
        ResourceSet::Prefix(p) => name.starts_with(p.as_ref()),
    }
}

/// Whether every name `inner` covers, `outer` covers.
fn within<E: AsRef<str>, P: AsRef<str>>(
    inner: &ResourceSet<E, P>,
    outer: &ResourceSet<E, P>,
) -> bool {
    match (inner, outer) {
        (ResourceSet::None, _) => true,
        (ResourceSet::Exact(e), _) => covers(outer, e.as_ref()),
        (ResourceSet::Prefix(q), ResourceSet::Prefix(p)) => q.as_ref().starts_with(p.as_ref()),
        (ResourceSet::Prefix(_), _) => false,
    }
}

/// A listing of names under `prefix` cut down to what `set` covers; `None` when nothing.
fn narrow<E: AsRef<str>, P: AsRef<str>>(set: &ResourceSet<E, P>, prefix: &str) -> Option<Narrowed> {
    match set {
        ResourceSet::None => None,
        ResourceSet::Exact(e) => e.as_ref().starts_with(prefix).then(|| Narrowed {
            prefix: e.as_ref().to_owned(),
            only: Some(e.as_ref().to_owned()),
        }),
        ResourceSet::Prefix(p) => {
            let p = p.as_ref();
            if prefix.starts_with(p) {
                Some(Narrowed {
                    prefix: prefix.to_owned(),
                    only: None,
                })
            } else if p.starts_with(prefix) {
                Some(Narrowed {
                    prefix: p.to_owned(),
                    only: None,
                })
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use s2_common::{
        access::{AccessTokenIdPrefix, BasinResourceSet, StreamResourceSet},
        basin::BasinNamePrefix,
        stream::StreamNamePrefix,
    };

    use super::*;

    fn scope(ops: EnumSet<Operation>) -> AccessTokenScope {
        AccessTokenScope {
            ops,
            ..Default::default()
        }
    }

    fn stream_prefix(p: &str) -> StreamResourceSet {
        ResourceSet::Prefix(p.parse::<StreamNamePrefix>().unwrap())
    }

    fn basin_exact(b: &str) -> BasinResourceSet {
        ResourceSet::Exact(b.parse().unwrap())
    }

    #[test]
    fn secrets_name_their_token_and_are_not_stored() {
        let (secret, digest) = new_secret("svc/ingest é");
        assert_eq!(token_id(&secret).as_deref(), Some("svc/ingest é"));
        assert_eq!(digest, encode_hex(&sha256(secret.as_bytes())));
        assert!(!digest.contains(secret.split_once('.').unwrap().1));
        assert_ne!(new_secret("x").0, new_secret("x").0);
        assert_eq!(token_id("not-a-token"), None);
        assert_eq!(token_id("zz.0000"), None);
    }

    #[test]
    fn groups_grant_the_operations_on_their_resource() {
        let stream_rw = PermittedOperationGroups {
            stream: ReadWritePermissions {
                read: true,
                write: true,
            },
            ..Default::default()
        };
        let ops = group_ops(&stream_rw);
        for op in [
            Operation::Append,
            Operation::Read,
            Operation::Fence,
            Operation::CreateStream,
        ] {
            assert!(ops.contains(op), "{op:?}");
        }
        assert!(!ops.contains(Operation::ListStreams));
        assert!(!ops.contains(Operation::CreateBasin));
        let account_read = PermittedOperationGroups {
            account: ReadWritePermissions {
                read: true,
                write: false,
            },
            ..Default::default()
        };
        assert!(group_ops(&account_read).contains(Operation::ListBasins));
        assert!(!group_ops(&account_read).contains(Operation::IssueAccessToken));
        assert!(group_ops(&PermittedOperationGroups::default()).is_empty());
    }

    #[test]
    fn a_scope_without_operations_or_with_a_misused_auto_prefix_is_refused() {
        assert!(Grant::new(scope(EnumSet::empty()), None, false).is_err());
        let mut s = scope(EnumSet::only(Operation::Read));
        s.streams = ResourceSet::Exact("a".parse().unwrap());
        assert!(Grant::new(s.clone(), None, true).is_err());
        s.streams = stream_prefix("tenant/");
        let grant = Grant::new(s, None, true).unwrap();
        assert_eq!(grant.stored_stream_name("x").unwrap(), "tenant/x");
        assert_eq!(grant.shown_stream_name("tenant/x"), "x");
        assert!(grant.stored_stream_name(&"x".repeat(512)).is_err());
    }

    #[test]
    fn resources_are_checked_by_exact_name_or_prefix() {
        let mut s = scope(Operation::Append | Operation::Read);
        s.basins = basin_exact("prod-basin");
        s.streams = stream_prefix("logs/");
        let grant = Grant::new(s, None, false).unwrap();
        assert_eq!(
            grant
                .may_on_stream(Operation::Append, "prod-basin", "logs/a")
                .unwrap(),
            "logs/a"
        );
        let denied = |r: Result<String, AuthError>| match r.unwrap_err() {
            AuthError::PermissionDenied(m) => m,
            e => panic!("{e:?}"),
        };
        assert_eq!(
            denied(grant.may_on_stream(Operation::Append, "prod-basin", "metrics/a")),
            "the access token does not cover stream `metrics/a`"
        );
        assert_eq!(
            denied(grant.may_on_stream(Operation::Append, "prod-basin-2", "logs/a")),
            "the access token does not cover basin `prod-basin-2`"
        );
        assert_eq!(
            denied(grant.may_on_stream(Operation::Trim, "prod-basin", "logs/a")),
            "the access token may not `trim`"
        );
        // An empty exact name matches nothing; an absent set matches nothing.
        assert!(grant.may_on_token(Operation::Read, "").is_err());
    }

    #[test]
    fn listings_are_cut_to_the_scope() {
        let logs: StreamResourceSet = stream_prefix("logs/");
        let n = |prefix: &str, only: Option<&str>| {
            Some(Narrowed {
                prefix: prefix.into(),
                only: only.map(Into::into),
            })
        };
        assert_eq!(narrow(&logs, ""), n("logs/", None));
        assert_eq!(narrow(&logs, "lo"), n("logs/", None));
        assert_eq!(narrow(&logs, "logs/a"), n("logs/a", None));
        assert_eq!(narrow(&logs, "m"), None);
        let exact: BasinResourceSet = basin_exact("prod-basin");
        assert_eq!(narrow(&exact, "pr"), n("prod-basin", Some("prod-basin")));
        assert_eq!(narrow(&exact, "q"), None);
        assert_eq!(narrow(&BasinResourceSet::None, ""), None);
        let all: BasinResourceSet = ResourceSet::Prefix(BasinNamePrefix::default());
        assert_eq!(narrow(&all, "x"), n("x", None));
    }

    #[test]
    fn a_grant_includes_only_narrower_grants() {
        let wide = |ops| {
            let mut s = scope(ops);
            s.streams = stream_prefix("a/");
            s.access_tokens = ResourceSet::Prefix(AccessTokenIdPrefix::default());
            Grant::new(s, None, false).unwrap()
        };
        let issuer = wide(Operation::Read | Operation::Append);
        let mut s = scope(EnumSet::only(Operation::Read));
        s.streams = stream_prefix("a/b/");
        assert!(issuer.includes(&Grant::new(s.clone(), None, false).unwrap()));
        s.streams = stream_prefix("b/");
        assert!(!issuer.includes(&Grant::new(s.clone(), None, false).unwrap()));
        s.streams = ResourceSet::Exact("a/x".parse().unwrap());
        assert!(issuer.includes(&Grant::new(s, None, false).unwrap()));
        assert!(!issuer.includes(&wide(Operation::Read | Operation::Trim)));
        let soon = OffsetDateTime::now_utc() + Duration::from_secs(60);
        let expiring = Grant {
            expires_at: Some(soon),
            ..wide(Operation::Read | Operation::Append)
        };
        assert!(!expiring.includes(&issuer));
        assert!(issuer.includes(&expiring));
    }
}
