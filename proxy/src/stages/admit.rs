//! Admit: who is asking, for what, and whether the request may enter.
//!
//! Names the client's tool, puts the path in its one canonical form (what
//! is classified and inspected is what the provider reads, see
//! [`promptwall_llm::path`]), classifies the API shape and resolves the
//! provider the client addressed (which upstream serves it is the route
//! stage's decision). Budgets by identity (issue: budgets) belong here too.

use http::request::Parts;
use http::{StatusCode, Uri};

use super::{Refusal, Stage};
use crate::config::{Config, ProviderConfig};
use crate::exchange::{ConnContext, Exchange, Listener, Target, Traffic};

pub struct Admit<'a> {
    pub config: &'a Config,
    /// Tokens the explicit listener accepts (`promptwall token`).
    pub tokens: &'a std::sync::RwLock<crate::tokens::TokenTable>,
    /// The API shapes requests are classified into.
    pub shapes: &'a promptwall_llm::Shapes,
    pub conn: &'a ConnContext,
}

/// The request, admitted: its shape is on the exchange, and this is where
/// the client addressed it.
#[derive(Debug, Clone)]
pub struct Admitted {
    pub target: Target,
}

impl<'a> Stage for Admit<'a> {
    type Input = &'a mut Parts;
    type Output = Admitted;

    async fn run(&self, ex: &mut Exchange, parts: &'a mut Parts) -> Result<Admitted, Refusal> {
        self.admit(ex, parts)
    }
}

impl Admit<'_> {
    /// The stage's decision, synchronous (no I/O happens here).
    pub fn admit(&self, ex: &mut Exchange, parts: &mut Parts) -> Result<Admitted, Refusal> {
        ex.client.tool = crate::attribution::identify_tool(ex.client.identity.as_ref(), &parts.headers).to_string();
        ex.method = parts.method.to_string();
        ex.path = parts.uri.path().to_string();
        if parts.method == http::Method::CONNECT {
            return Err(Refusal::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "promptwall: this listener is a base URL, not an HTTP proxy; set ANTHROPIC_BASE_URL=http://<listen.explicit> or OPENAI_BASE_URL=http://<listen.explicit>/v1 instead of HTTPS_PROXY",
            ));
        }
        canonicalize_path(&mut parts.uri).map_err(|e| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "promptwall: refused request path: {e}; send the path without dot segments or encoded separators"
                ),
            )
        })?;
        ex.path = parts.uri.path().to_string();
        ex.traffic = Traffic::Api(crate::inspect::classify(self.shapes, &parts.method, parts.uri.path()));
        if self.conn.listener == Listener::Explicit {
            self.authenticate(ex, parts)?;
        }
        let target =
            resolve_target(self.config, self.conn, parts).map_err(|m| Refusal::new(StatusCode::NOT_FOUND, m))?;
        ex.path = target.uri.path().to_string();
        ex.target = Some(target.clone());
        Ok(Admitted { target })
    }
}

impl Admit<'_> {
    /// A `pw_live_` token names the request's user and may carry limits;
    /// an unknown or revoked one is a 401, one outside its scopes a 403.
    /// The token never leaves for the provider.
    fn authenticate(&self, ex: &mut Exchange, parts: &mut Parts) -> Result<(), Refusal> {
        let Some((header, presented)) = crate::tokens::presented(&parts.headers) else {
            return Ok(());
        };
        parts.headers.remove(header);
        let table = self.tokens.read().expect("token table lock");
        match table.check(&presented, ex.shape()) {
            Ok(grant) => {
                let identity = ex.client.identity.get_or_insert_with(Default::default);
                identity.user = Some(grant.user.clone());
                ex.client.token = Some(std::sync::Arc::new(grant.clone()));
                Ok(())
            }
            Err(e) => {
                let status = match e {
                    crate::tokens::TokenError::OutOfScope { .. } => StatusCode::FORBIDDEN,
                    _ => StatusCode::UNAUTHORIZED,
                };
                ex.verdict = crate::exchange::Verdict::Blocked;
                Err(Refusal::new(status, e.to_string()))
            }
        }
    }
}

/// Rewrites `uri`'s path to its canonical form (query untouched).
fn canonicalize_path(uri: &mut Uri) -> Result<(), promptwall_llm::path::PathError> {
    let canonical = promptwall_llm::path::normalize(uri.path())?;
    if canonical == uri.path() {
        return Ok(());
    }
    let path_and_query = match uri.query() {
        Some(q) => format!("{canonical}?{q}"),
        None => canonical.into_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(
        path_and_query
            .parse()
            .map_err(|_| promptwall_llm::path::PathError::ForbiddenByte)?,
    );
    *uri = Uri::from_parts(parts).map_err(|_| promptwall_llm::path::PathError::ForbiddenByte)?;
    Ok(())
}

/// The provider the client addressed: the TLS server name (transparent and
/// explicit TLS), else the explicit listener's `/<provider>/` prefix, an
/// `anthropic-version` header, or a provider's API path.
fn resolve_target(config: &Config, conn: &ConnContext, parts: &Parts) -> Result<Target, String> {
    let path_and_query = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    if let Some(name) = conn.server_name.as_deref() {
        let provider = config.provider_for_host(name).ok_or_else(|| {
            format!("promptwall: {name} is not a configured provider host; add it to [[providers]] hosts")
        })?;
        let port = conn
            .origin
            .as_ref()
            .map(|o| o.original_dst.port())
            .filter(|p| *p != 443);
        let authority = match port {
            Some(p) => format!("{name}:{p}"),
            None => name.to_string(),
        };
        let uri = format!("https://{authority}{path_and_query}")
            .parse::<Uri>()
            .map_err(|e| e.to_string())?;
        return Ok(Target {
            provider: provider.name.clone(),
            uri,
            host: name.to_string(),
            dial: conn.origin.as_ref().map(|o| o.original_dst),
        });
    }
    let path = parts.uri.path();
    let by_prefix = config.providers.iter().find_map(|p| {
        let prefix = format!("/{}/", p.name);
        path.starts_with(&prefix)
            .then(|| (p, &path_and_query[prefix.len() - 1..]))
    });
    let chosen: Option<(&ProviderConfig, &str)> = by_prefix
        .or_else(|| {
            parts
                .headers
                .contains_key("anthropic-version")
                .then(|| config.providers.iter().find(|p| p.name == "anthropic"))
                .flatten()
                .map(|p| (p, path_and_query))
        })
        .or_else(|| {
            config
                .providers
                .iter()
                .find(|p| p.paths.iter().any(|prefix| path.starts_with(prefix.as_str())))
                .map(|p| (p, path_and_query))
        });
    let (provider, rest) = chosen.ok_or_else(|| {
        format!("promptwall: no provider serves path {path}; use a provider's API path or prefix it with /<provider>/")
    })?;
    let base: Uri = provider
        .upstream
        .parse()
        .map_err(|e| format!("provider {} upstream is not a URI: {e}", provider.name))?;
    let host = base.host().unwrap_or_default().to_string();
    let uri = format!("{}{rest}", provider.upstream.trim_end_matches('/'))
        .parse::<Uri>()
        .map_err(|e| e.to_string())?;
    Ok(Target {
        provider: provider.name.clone(),
        uri,
        host,
        dial: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::{Client, Listener};
    use promptwall_llm::ApiShape;

    fn conn(server_name: Option<&str>) -> ConnContext {
        ConnContext {
            listener: Listener::Explicit,
            peer: "127.0.0.1:5000".parse().unwrap(),
            server_name: server_name.map(str::to_string),
            origin: None,
            identity: None,
        }
    }

    fn admit(
        config: &Config,
        server_name: Option<&str>,
        method: &str,
        uri: &str,
    ) -> (Exchange, Result<Admitted, Refusal>) {
        let conn = conn(server_name);
        let tokens = std::sync::RwLock::new(crate::tokens::TokenTable::default());
        let stage = Admit {
            config,
            tokens: &tokens,
            shapes: &promptwall_llm::Shapes::builtin(),
            conn: &conn,
        };
        let (mut parts, ()) = http::Request::builder()
            .method(method)
            .uri(uri)
            .body(())
            .unwrap()
            .into_parts();
        let mut ex = Exchange::new(Listener::Explicit, Client::default());
        let out = stage.admit(&mut ex, &mut parts);
        (ex, out)
    }

    #[test]
    fn a_connect_request_is_told_to_use_a_base_url() {
        let (_, out) = admit(&Config::default(), None, "CONNECT", "api.openai.com:443");
        let refusal = out.unwrap_err();
        assert_eq!(refusal.status, StatusCode::METHOD_NOT_ALLOWED);
        assert!(refusal.message.contains("BASE_URL"));
    }

    #[test]
    fn a_dot_segment_path_is_classified_and_forwarded_in_canonical_form() {
        let (ex, out) = admit(
            &Config::default(),
            Some("api.anthropic.com"),
            "POST",
            "/v1/x/../messages?beta=true",
        );
        let target = out.unwrap().target;
        assert_eq!(ex.shape(), ApiShape::ANTHROPIC_MESSAGES);
        assert_eq!(
            target.uri.to_string(),
            "https://api.anthropic.com/v1/messages?beta=true"
        );
        assert_eq!(target.provider, "anthropic");
    }

    #[test]
    fn an_encoded_separator_in_the_path_is_refused() {
        let (_, out) = admit(&Config::default(), None, "POST", "/v1%2Fmessages");
        assert_eq!(out.unwrap_err().status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn the_explicit_listener_routes_by_provider_prefix_and_by_api_path() {
        let config = Config::default();
        let (_, out) = admit(&config, None, "POST", "/openai/v1/chat/completions");
        let target = out.unwrap().target;
        assert_eq!(
            (target.provider.as_str(), target.uri.path()),
            ("openai", "/v1/chat/completions")
        );
        let (ex, out) = admit(&config, None, "POST", "/v1/messages");
        assert_eq!(out.unwrap().target.provider, "anthropic");
        assert_eq!(ex.shape(), ApiShape::ANTHROPIC_MESSAGES);
    }

    #[test]
    fn a_path_no_provider_serves_is_not_found() {
        let (_, out) = admit(&Config::default(), None, "POST", "/nowhere");
        assert_eq!(out.unwrap_err().status, StatusCode::NOT_FOUND);
        let (_, out) = admit(&Config::default(), Some("example.com"), "POST", "/v1/messages");
        assert_eq!(out.unwrap_err().status, StatusCode::NOT_FOUND);
    }
}
