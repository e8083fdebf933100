//! Tokens for the explicit listener (`pw_live_…`), for shared or remote
//! use where no process identity exists: a token names its user, the APIs
//! it may call (scopes) and, optionally, its own rate and daily token
//! limits. Only a SHA-256 of each token is stored; the daemon keeps the
//! table in memory and the agent refreshes it from the store.
//!
//! A token is presented as `x-promptwall-token: pw_live_…` (the client's
//! own provider key then passes as usual), or in place of the provider key
//! (`Authorization: Bearer pw_live_…` or `x-api-key: pw_live_…`), where a
//! route to an org account must supply the provider's. Either way it is
//! removed before the request leaves.

use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderMap;
use promptwall_llm::ApiShape;
use sha2::{Digest, Sha256};

use crate::quota::{LimitConfig, Measure, Per, WindowUnit};

pub const PREFIX: &str = "pw_live_";
pub const HEADER: &str = "x-promptwall-token";

/// A live token, as the daemon knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub id: String,
    pub user: String,
    /// Scope names (see [`scope_of`]); `*` allows every API.
    pub scopes: Vec<String>,
    /// Its own limits (`token:<id>:rate`, `token:<id>:daily-tokens`).
    pub limits: Vec<Arc<LimitConfig>>,
}

impl Grant {
    pub fn allows(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == "*" || s == scope)
    }
}

/// Why a presented token was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TokenError {
    #[error("promptwall: this pw_live_ token is not known; check it, or create one with `promptwall token create`")]
    Unknown,
    #[error("promptwall: token {id} was revoked at {at}; ask for a new one (`promptwall token create`)")]
    Revoked { id: String, at: String },
    #[error("promptwall: token {id} may not call the {scope} API (its scopes: {scopes}); create a token with --scopes {scope}")]
    OutOfScope { id: String, scope: String, scopes: String },
}

/// Every stored token by hash.
#[derive(Debug, Default, Clone)]
pub struct TokenTable {
    by_hash: HashMap<String, Result<Grant, (String, String)>>,
}

/// One stored token, as the store gives it.
pub struct Stored<'a> {
    pub id: &'a str,
    pub hash: &'a str,
    pub user: &'a str,
    pub scopes: &'a str,
    pub rate_per_minute: Option<f64>,
    pub tokens_per_day: Option<f64>,
    pub revoked_at: Option<&'a str>,
}

impl TokenTable {
    pub fn new<'a>(rows: impl IntoIterator<Item = Stored<'a>>) -> TokenTable {
        let by_hash = rows
            .into_iter()
            .map(|r| {
                let entry = match r.revoked_at {
                    Some(at) => Err((r.id.to_string(), at.to_string())),
                    None => Ok(Grant {
                        id: r.id.into(),
                        user: r.user.into(),
                        scopes: r
                            .scopes
                            .split(',')
                            .map(|s| s.trim().to_string())
                            .filter(|s| !s.is_empty())
                            .collect(),
                        limits: token_limits(r.id, r.rate_per_minute, r.tokens_per_day),
                    }),
                };
                (r.hash.to_string(), entry)
            })
            .collect();
        TokenTable { by_hash }
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// The grant of `presented` for a request of `shape`.
    pub fn check(&self, presented: &str, shape: ApiShape) -> Result<&Grant, TokenError> {
        let grant = match self.by_hash.get(&hash(presented)) {
            None => return Err(TokenError::Unknown),
            Some(Err((id, at))) => {
                return Err(TokenError::Revoked {
                    id: id.clone(),
                    at: at.clone(),
                })
            }
            Some(Ok(g)) => g,
        };
        let scope = scope_of(shape);
        if !grant.allows(scope) {
            return Err(TokenError::OutOfScope {
                id: grant.id.clone(),
                scope: scope.into(),
                scopes: grant.scopes.join(","),
            });
        }
        Ok(grant)
    }
}

fn token_limits(id: &str, rate_per_minute: Option<f64>, tokens_per_day: Option<f64>) -> Vec<Arc<LimitConfig>> {
    let limit = |suffix: &str, measure, max, window| {
        Arc::new(LimitConfig::new(
            format!("token:{id}:{suffix}"),
            Per::Token,
            measure,
            max,
            Some(window),
        ))
    };
    let mut out = Vec::new();
    if let Some(max) = rate_per_minute {
        out.push(limit("rate", Measure::Requests, max, WindowUnit::Minute));
    }
    if let Some(max) = tokens_per_day {
        out.push(limit("daily-tokens", Measure::Tokens, max, WindowUnit::Day));
    }
    out
}

/// The scope a request of `shape` needs.
pub fn scope_of(shape: ApiShape) -> &'static str {
    match shape {
        s if s == ApiShape::ANTHROPIC_MESSAGES => "messages",
        s if s == ApiShape::ANTHROPIC_COUNT_TOKENS => "count_tokens",
        s if s == ApiShape::OPENAI_CHAT => "chat",
        s if s == ApiShape::OPENAI_RESPONSES => "responses",
        s if s == ApiShape::OPENAI_EMBEDDINGS => "embeddings",
        _ => "other",
    }
}

/// The scope names `promptwall token create --scopes` accepts.
pub const SCOPES: &[&str] = &[
    "messages",
    "count_tokens",
    "chat",
    "responses",
    "embeddings",
    "other",
    "*",
];

/// Hex SHA-256 of a token (tokens carry 244 random bits; a slow hash adds
/// nothing against guessing them).
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new token and its id (the first 12 hex digits of its hash).
pub fn mint() -> (String, String) {
    let token = format!(
        "{PREFIX}{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let id = hash(&token)[..12].to_string();
    (token, id)
}

/// The token a request presents, and the header that carries it.
pub fn presented(headers: &HeaderMap) -> Option<(&'static str, String)> {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(t) = value(HEADER) {
        return Some((HEADER, t.to_string()));
    }
    if let Some(t) = value("authorization").and_then(|v| v.strip_prefix("Bearer ")) {
        if t.trim().starts_with(PREFIX) {
            return Some(("authorization", t.trim().to_string()));
        }
    }
    match value("x-api-key") {
        Some(t) if t.starts_with(PREFIX) => Some(("x-api-key", t.to_string())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(token: &str, scopes: &str, revoked: Option<&str>) -> TokenTable {
        let h = hash(token);
        TokenTable::new([Stored {
            id: "abc123",
            hash: &h,
            user: "alice",
            scopes,
            rate_per_minute: Some(30.0),
            tokens_per_day: None,
            revoked_at: revoked,
        }])
    }

    #[test]
    fn a_known_token_grants_its_user_within_its_scopes() {
        let (token, id) = mint();
        assert!(token.starts_with(PREFIX) && token.len() == PREFIX.len() + 64);
        assert_eq!(id.len(), 12);
        let t = table(&token, "messages,chat", None);
        let g = t.check(&token, ApiShape::ANTHROPIC_MESSAGES).unwrap();
        assert_eq!(g.user, "alice");
        assert_eq!(g.limits.len(), 1);
        assert_eq!(g.limits[0].name, "token:abc123:rate");
        assert_eq!(
            t.check(&token, ApiShape::OPENAI_EMBEDDINGS).unwrap_err(),
            TokenError::OutOfScope {
                id: "abc123".into(),
                scope: "embeddings".into(),
                scopes: "messages,chat".into()
            }
        );
        assert!(table(&token, "*", None)
            .check(&token, ApiShape::OPENAI_EMBEDDINGS)
            .is_ok());
    }

    #[test]
    fn unknown_and_revoked_tokens_are_refused_and_say_which() {
        let (token, _) = mint();
        let t = table(&token, "*", Some("2027-01-15T08:00:00.000Z"));
        assert!(matches!(
            t.check(&token, ApiShape::OPENAI_CHAT),
            Err(TokenError::Revoked { .. })
        ));
        assert_eq!(
            t.check(&format!("{token}x"), ApiShape::OPENAI_CHAT).unwrap_err(),
            TokenError::Unknown
        );
        assert!(!TokenError::Unknown.to_string().contains(&token));
    }

    #[test]
    fn a_token_is_found_in_its_header_or_in_place_of_the_provider_key() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer sk-proj-real".parse().unwrap());
        assert_eq!(presented(&h), None, "a provider key is not a promptwall token");
        h.insert("x-api-key", "pw_live_abc".parse().unwrap());
        assert_eq!(presented(&h), Some(("x-api-key", "pw_live_abc".into())));
        h.insert("authorization", "Bearer pw_live_def".parse().unwrap());
        assert_eq!(presented(&h), Some(("authorization", "pw_live_def".into())));
        h.insert(HEADER, "pw_live_ghi".parse().unwrap());
        assert_eq!(presented(&h), Some((HEADER, "pw_live_ghi".into())));
    }
}
