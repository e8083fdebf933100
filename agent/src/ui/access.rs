//! Who may see the UI. Decided apart from serving, one test per case.
//!
//! On a machine, a connection from this host is let in when the kernel
//! says its socket belongs to root or a member of the `promptwall` group
//! (the people who may read the store anyway); anyone else needs the token
//! `promptwall ui` prints (in the URL it opens, then as a cookie). For the
//! fleet it sits behind the org's SSO reverse proxy: an identity header is
//! believed only from the proxy addresses configured, never from anyone
//! else.

use std::net::IpAddr;

use http::header::{AUTHORIZATION, COOKIE, HOST};
use http::{HeaderMap, HeaderName};
use sha2::{Digest, Sha256};

/// Name of the session cookie holding the token.
pub const COOKIE_NAME: &str = "pw_ui";

#[derive(Debug, Clone)]
pub struct AccessPolicy {
    token_digest: [u8; 32],
    trusted_proxies: Vec<IpAddr>,
    identity_header: Option<HeaderName>,
    /// Local users let in without the token: root, the `promptwall`
    /// group's members, the UI's own user.
    local_users: Vec<u32>,
}

/// Who is looking, as far as the UI knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    /// Holds the token `promptwall ui` printed.
    TokenHolder,
    /// A local user the kernel named (root or the `promptwall` group).
    LocalUser(u32),
    /// Named by the trusted reverse proxy.
    Named(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    Allowed(Viewer),
    /// The token arrived in the URL: set the cookie and send the browser on
    /// without it (so it leaves the address bar and history).
    SetCookie,
    Refused,
}

impl AccessPolicy {
    pub fn new(token: &str, trusted_proxies: Vec<IpAddr>, identity_header: Option<HeaderName>) -> AccessPolicy {
        AccessPolicy {
            token_digest: Sha256::digest(token.as_bytes()).into(),
            trusted_proxies,
            identity_header,
            local_users: Vec::new(),
        }
    }

    /// Lets these local uids in without the token.
    pub fn with_local_users(mut self, uids: Vec<u32>) -> AccessPolicy {
        self.local_users = uids;
        self
    }

    /// Compares digests, so the time taken says nothing about the token.
    fn is_token(&self, candidate: &str) -> bool {
        let d: [u8; 32] = Sha256::digest(candidate.as_bytes()).into();
        d == self.token_digest
    }

    /// `peer_uid`: the owner of the connecting socket when it is on this
    /// host (from the kernel's socket table), else None.
    pub fn decide(
        &self,
        peer: IpAddr,
        peer_uid: Option<u32>,
        headers: &HeaderMap,
        query_token: Option<&str>,
    ) -> Access {
        if let Some(header) = &self.identity_header {
            if self.trusted_proxies.contains(&peer) {
                if let Some(name) = headers
                    .get(header)
                    .and_then(|v| v.to_str().ok())
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                {
                    return Access::Allowed(Viewer::Named(name.to_string()));
                }
            }
        }
        // A token in the URL is moved into the cookie even when one is set,
        // so it never stays in the address bar.
        if query_token.is_some_and(|t| self.is_token(t)) {
            return Access::SetCookie;
        }
        let bearer = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let cookie = headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().strip_prefix(COOKIE_NAME)?.strip_prefix('='))
            .find(|t| self.is_token(t));
        if cookie.is_some() || bearer.is_some_and(|t| self.is_token(t)) {
            return Access::Allowed(Viewer::TokenHolder);
        }
        match peer_uid {
            Some(uid) if self.local_users.contains(&uid) && asked_for_here(headers) => {
                Access::Allowed(Viewer::LocalUser(uid))
            }
            _ => Access::Refused,
        }
    }
}

/// Whether a request standing on its socket's owner was meant for this
/// page, not made by another site through the viewer's browser: any web
/// page can make a local browser send requests here, and one whose name
/// it re-points at 127.0.0.1 (DNS rebinding) can even read the answers.
/// Such a request names the attacker's host in `Host`, and browsers mark
/// it `Sec-Fetch-Site: cross-site`. The token is not exposed to this:
/// its cookie is `SameSite=Strict` and bound to the address.
fn asked_for_here(headers: &HeaderMap) -> bool {
    let host_is_local = match headers.get(HOST).map(|h| h.to_str()) {
        None => true,
        Some(Ok(host)) => {
            let name = match host.strip_prefix('[') {
                Some(v6) => v6.split(']').next().unwrap_or(""),
                None => host.rsplit_once(':').map_or(host, |(name, _port)| name),
            };
            name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
        Some(Err(_)) => false,
    };
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    host_is_local && matches!(fetch_site, None | Some("same-origin") | Some("none"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> AccessPolicy {
        AccessPolicy::new(
            "s3cret",
            vec!["10.0.0.5".parse().unwrap()],
            Some(HeaderName::from_static("x-forwarded-user")),
        )
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap()))
            .collect()
    }

    const LOCAL: &str = "127.0.0.1";

    #[test]
    fn a_stranger_gets_nothing_without_the_token() {
        assert_eq!(
            policy().decide(LOCAL.parse().unwrap(), None, &headers(&[]), None),
            Access::Refused
        );
        assert_eq!(
            policy().decide(
                LOCAL.parse().unwrap(),
                None,
                &headers(&[("cookie", "pw_ui=guess")]),
                Some("nope")
            ),
            Access::Refused
        );
    }

    #[test]
    fn the_token_in_the_url_becomes_a_cookie_and_the_cookie_or_a_bearer_lets_in() {
        let p = policy();
        let peer = LOCAL.parse().unwrap();
        assert_eq!(p.decide(peer, None, &headers(&[]), Some("s3cret")), Access::SetCookie);
        assert_eq!(
            p.decide(peer, None, &headers(&[("cookie", "theme=dark; pw_ui=s3cret")]), None),
            Access::Allowed(Viewer::TokenHolder)
        );
        assert_eq!(
            p.decide(peer, None, &headers(&[("authorization", "Bearer s3cret")]), None),
            Access::Allowed(Viewer::TokenHolder)
        );
    }

    #[test]
    fn root_and_the_group_get_in_from_this_host_and_other_local_users_need_the_token() {
        let p = policy().with_local_users(vec![0, 1001]);
        let peer = LOCAL.parse().unwrap();
        assert_eq!(
            p.decide(peer, Some(0), &headers(&[]), None),
            Access::Allowed(Viewer::LocalUser(0))
        );
        assert_eq!(
            p.decide(peer, Some(1001), &headers(&[]), None),
            Access::Allowed(Viewer::LocalUser(1001))
        );
        assert_eq!(p.decide(peer, Some(65534), &headers(&[]), None), Access::Refused);
        assert_eq!(
            p.decide(peer, Some(65534), &headers(&[("authorization", "Bearer s3cret")]), None),
            Access::Allowed(Viewer::TokenHolder)
        );
        assert_eq!(
            p.decide(peer, None, &headers(&[]), None),
            Access::Refused,
            "not on this host"
        );
    }

    #[test]
    fn a_local_users_standing_does_not_extend_to_pages_of_other_sites() {
        let p = policy().with_local_users(vec![0]);
        let peer = LOCAL.parse().unwrap();
        for ours in [
            vec![("host", "127.0.0.1:8790")],
            vec![("host", "localhost:8790"), ("sec-fetch-site", "same-origin")],
            vec![("host", "[::1]:8790"), ("sec-fetch-site", "none")],
        ] {
            assert_eq!(
                p.decide(peer, Some(0), &headers(&ours), None),
                Access::Allowed(Viewer::LocalUser(0)),
                "{ours:?}"
            );
        }
        // DNS rebinding: the attacker's name re-pointed at 127.0.0.1.
        let rebound = headers(&[("host", "attacker.example:8790")]);
        assert_eq!(p.decide(peer, Some(0), &rebound, None), Access::Refused);
        // Another site's page making the browser send the request.
        let cross = headers(&[("host", "127.0.0.1:8790"), ("sec-fetch-site", "cross-site")]);
        assert_eq!(p.decide(peer, Some(0), &cross, None), Access::Refused);
        // The token still works from anywhere it is held.
        let with_token = headers(&[("host", "ui.corp.example"), ("authorization", "Bearer s3cret")]);
        assert_eq!(
            p.decide(peer, Some(0), &with_token, None),
            Access::Allowed(Viewer::TokenHolder)
        );
    }

    #[test]
    fn an_identity_header_counts_only_from_a_trusted_proxy() {
        let p = policy();
        let named = headers(&[("x-forwarded-user", "carol@example.org")]);
        assert_eq!(
            p.decide("10.0.0.5".parse().unwrap(), None, &named, None),
            Access::Allowed(Viewer::Named("carol@example.org".into()))
        );
        assert_eq!(
            p.decide("10.0.0.6".parse().unwrap(), None, &named, None),
            Access::Refused
        );
        assert_eq!(p.decide(LOCAL.parse().unwrap(), None, &named, None), Access::Refused);
        let empty = headers(&[("x-forwarded-user", "  ")]);
        assert_eq!(
            p.decide("10.0.0.5".parse().unwrap(), None, &empty, None),
            Access::Refused
        );
    }
}
