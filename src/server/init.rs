//! `--init-file`: basins, streams and access tokens a node makes exist at start.
//!
//! The format is `s2 apply`'s and `s2 lite --init-file`'s resource spec
//! ([`s2_resource_spec`]: `{"basins": [{"name", "config", "streams": [{"name", "config"}]}]}`),
//! read by that crate so the two cannot drift, plus one Sluice extension the spec has no
//! place for: `"access_tokens": [{"id", "secret", "scope", "expires_at",
//! "auto_prefix_streams"}]`, the fields of S2's issue-access-token request and the secret
//! clients will present. Other top-level keys (but `$schema`) are an error, so a typo is
//! not silently ignored.
//!
//! Applying is idempotent, with PUT's semantics as in `s2 lite`: what is missing is
//! created, what differs from the file is set to the file's config (a token whose scope,
//! expiry or secret differ is reissued), and what is not in the file is left alone. The
//! whole file is parsed and validated before anything is applied.

use std::path::Path;

use s2_common::config::{BasinConfig, OptionalStreamConfig};
use serde::Deserialize;
use tracing::info;

use crate::{
    engine::{AccessTokenEntry, Engine, Provisioned},
    http::auth::{Grant, declared_secret_digest},
};

/// A parsed and validated init file.
#[derive(Debug)]
pub struct InitFile {
    basins: Vec<s2_resource_spec::Basin>,
    tokens: Vec<DeclaredToken>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    #[serde(rename = "$schema", default)]
    _schema: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    basins: Vec<s2_resource_spec::Basin>,
    #[serde(default)]
    access_tokens: Vec<TokenFormat>,
}

/// An access token as the file declares it: S2's issue request and the secret.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFormat {
    id: s2_common::access::AccessTokenId,
    secret: String,
    #[serde(default, with = "time::serde::rfc3339::option")]
    expires_at: Option<time::OffsetDateTime>,
    #[serde(default)]
    auto_prefix_streams: Option<bool>,
    scope: s2_api::v1::access::AccessTokenScope,
}

#[derive(Debug)]
struct DeclaredToken {
    info: s2_api::v1::access::AccessTokenInfo,
    secret_sha256: String,
}

impl InitFile {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read --init-file {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("--init-file {}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let file: FileFormat = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let FileFormat {
            basins,
            access_tokens,
            ..
        } = file;
        let resources = s2_resource_spec::Resources { basins };
        s2_resource_spec::validate(&resources)?;
        let mut seen = std::collections::HashSet::new();
        let tokens = access_tokens
            .into_iter()
            .map(|t| {
                let id = t.id.to_string();
                if !seen.insert(id.clone()) {
                    return Err(format!("duplicate access token id {id:?}"));
                }
                DeclaredToken::new(t).map_err(|e| format!("access token {id:?}: {e}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            basins: resources.basins,
            tokens,
        })
    }

    /// Makes everything the file declares exist as declared.
    pub async fn apply(self, engine: &Engine) -> Result<(), String> {
        for basin in self.basins {
            let name = basin.name.to_string();
            let config = basin.config.map(BasinConfig::from).unwrap_or_default();
            let outcome = engine
                .ensure_basin(&name, config)
                .await
                .map_err(|e| format!("basin {name:?}: {e}"))?;
            info!(basin = name, outcome = outcome_name(&outcome), "init file");
            for stream in basin.streams {
                let stream_name = stream.name.to_string();
                let config = stream
                    .config
                    .map(OptionalStreamConfig::from)
                    .unwrap_or_default();
                let outcome = engine
                    .ensure_stream(&name, &stream_name, config)
                    .await
                    .map_err(|e| format!("stream {stream_name:?} in basin {name:?}: {e}"))?;
                info!(
                    basin = name,
                    stream = stream_name,
                    outcome = outcome_name(&outcome),
                    "init file"
                );
            }
        }
        for token in self.tokens {
            let id = token.info.id.to_string();
            let outcome = token
                .ensure(engine)
                .await
                .map_err(|e| format!("access token {id:?}: {e}"))?;
            info!(access_token = id, outcome, "init file");
        }
        Ok(())
    }
}

fn outcome_name<T>(outcome: &Provisioned<T>) -> &'static str {
    match outcome {
        Provisioned::Created(_) => "created",
        Provisioned::Updated(_) => "updated",
        Provisioned::Unchanged(_) => "unchanged",
    }
}

impl DeclaredToken {
    fn new(t: TokenFormat) -> Result<Self, String> {
        let request = s2_api::v1::access::IssueAccessTokenRequest {
            id: t.id,
            expires_at: t.expires_at,
            auto_prefix_streams: t.auto_prefix_streams,
            scope: t.scope,
        };
        let request: s2_common::access::IssueAccessTokenRequest =
            request.try_into().map_err(|e| format!("{e}"))?;
        // The same checks as a token issued through the API.
        Grant::new(
            request.scope.clone(),
            request.expires_at,
            request.auto_prefix_streams,
        )?;
        let secret_sha256 = declared_secret_digest(request.id.as_ref(), &t.secret)?;
        Ok(Self {
            info: s2_common::access::AccessTokenInfo {
                id: request.id,
                expires_at: request.expires_at,
                auto_prefix_streams: request.auto_prefix_streams,
                scope: request.scope,
            }
            .into(),
            secret_sha256,
        })
    }

    async fn ensure(self, engine: &Engine) -> Result<&'static str, String> {
        if self
            .info
            .expires_at
            .is_some_and(|t| t <= engine.clock().now())
        {
            return Err("`expires_at` is in the past".into());
        }
        self.write(engine).await.map_err(|e| e.to_string())
    }

    async fn write(self, engine: &Engine) -> Result<&'static str, crate::engine::EngineError> {
        let id = self.info.id.to_string();
        let existing = engine.access_token(&id).await?;
        if let Some(existing) = &existing
            && existing.secret_sha256 == self.secret_sha256
            && serde_json::to_value(&existing.info).ok() == serde_json::to_value(&self.info).ok()
        {
            return Ok("unchanged");
        }
        if existing.is_some() {
            engine.revoke_access_token(&id).await?;
        }
        engine
            .issue_access_token(&AccessTokenEntry {
                info: self.info,
                secret_sha256: self.secret_sha256,
                issued_at: engine.clock().now(),
            })
            .await?;
        Ok(if existing.is_some() {
            "updated"
        } else {
            "created"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "6369.0000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn s2_apply_files_and_tokens_parse() {
        let file = InitFile::parse(&format!(
            r#"{{
              "$schema": "https://example.invalid/schema.json",
              "basins": [{{
                "name": "my-basin",
                "config": {{"create_stream_on_append": true,
                            "default_stream_config": {{"retention_policy": "7days"}}}},
                "streams": [{{"name": "events", "config": {{"storage_class": "standard",
                              "retention_policy": "infinite",
                              "timestamping": {{"mode": "client-require"}}}}}}]
              }}],
              "access_tokens": [{{"id": "ci", "secret": "{SECRET}",
                                  "scope": {{"basins": {{"exact": "my-basin"}},
                                             "op_groups": {{"stream": {{"read": true}}}}}}}}]
            }}"#
        ))
        .unwrap();
        assert_eq!(file.basins.len(), 1);
        assert_eq!(file.basins[0].streams.len(), 1);
        assert_eq!(file.tokens.len(), 1);
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let err = |text: &str| InitFile::parse(text).unwrap_err();
        assert!(err(r#"{"basin": []}"#).contains("unknown field `basin`"));
        assert!(err(r#"{"basins": [{"name": "BAD"}]}"#).contains("basin name"));
        assert!(
            err(r#"{"basins": [{"name": "basin-aaa"}, {"name": "basin-aaa"}]}"#)
                .contains("duplicate basin name")
        );
        assert!(
            err(r#"{"basins": [{"name": "basin-aaa", "streams": [{"name": "s", "config": {"retention_policy": "0s"}}]}]}"#)
                .contains("greater than 0")
        );
        let token = |id: &str, secret: &str| {
            err(&format!(
                r#"{{"access_tokens": [{{"id": "{id}", "secret": "{secret}",
                                        "scope": {{"ops": ["list-basins"]}}}}]}}"#
            ))
        };
        assert!(token("ci", "short").contains("must be `<the id in hex>.<64 hex digits>`"));
        // The secret of another id.
        assert!(token("cd", SECRET).contains("6364."));
        let ci =
            format!(r#"{{"id": "ci", "secret": "{SECRET}", "scope": {{"ops": ["list-basins"]}}}}"#);
        let twice = format!(r#"{{"access_tokens": [{ci}, {ci}]}}"#);
        assert!(err(&twice).contains("duplicate access token id"));
        let no_ops = format!(
            r#"{{"access_tokens": [{{"id": "ci", "secret": "{SECRET}", "scope": {{}}}}]}}"#
        );
        assert!(err(&no_ops).contains("permits no operation"));
    }
}
