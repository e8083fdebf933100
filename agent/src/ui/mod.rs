//! `promptwall ui`: the web UI, served by promptwall itself from assets
//! embedded in the binary (no CDN, no separate server). It reads an audit
//! store, the machine's own or the fleet's PostgreSQL (`--db`), so the same
//! pages serve a developer's laptop and the security team.
//!
//! Pages are a small single-page app (`assets/`); the data comes from
//! `/api/*` as JSON, and the Live page from `/api/live` as server-sent
//! events, polled from the store every [`LIVE_POLL`] so it works the same on
//! SQLite and PostgreSQL.

mod access;
mod api;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use promptwall_audit::AuditStore;

use crate::config::AgentConfig;
pub use access::{Access, AccessPolicy, Viewer};

/// How often the Live page's stream looks for new rows.
pub const LIVE_POLL: Duration = Duration::from_millis(250);

#[derive(clap::Args)]
pub struct UiArgs {
    /// Address to serve on. Keep it on loopback unless a reverse proxy
    /// in front authenticates people.
    #[arg(long, default_value = "127.0.0.1:8790")]
    pub listen: SocketAddr,
    /// Audit store to show (default: this machine's, from [audit] url);
    /// `postgres://…` for the fleet.
    #[arg(long)]
    pub db: Option<String>,
    /// Reverse proxies whose identity header is believed (repeatable).
    #[arg(long = "trusted-proxy")]
    pub trusted_proxies: Vec<IpAddr>,
    /// Header carrying the signed-in person's name from a trusted proxy.
    #[arg(long, default_value = "x-forwarded-user")]
    pub identity_header: String,
    /// Show captured request and answer bodies (when `[audit]
    /// capture_bodies` stored them) on the request page.
    #[arg(long)]
    pub show_bodies: bool,
    /// Open the URL in a browser (xdg-open) as well as printing it.
    #[arg(long)]
    pub open: bool,
    /// Print one JSON line with the URL and token instead of prose.
    #[arg(long)]
    pub json: bool,
}

/// What the handlers share.
pub struct Ui {
    pub store: AuditStore,
    pub access: AccessPolicy,
    pub show_bodies: bool,
    pub config: AgentConfig,
    /// Held while the Setup page's checks run: one run at a time.
    pub doctor: tokio::sync::Mutex<()>,
}

pub async fn run(args: UiArgs, config: &AgentConfig) -> anyhow::Result<()> {
    let url = args.db.clone().unwrap_or_else(|| config.audit.url.clone());
    let store = AuditStore::open_read_only(&url).await.with_context(|| {
        format!(
            "cannot open the audit store {} for reading; run as root or a member of the promptwall group, or pass --db",
            promptwall_audit::store::redact_url(&url)
        )
    })?;
    let identity_header = http::HeaderName::try_from(args.identity_header.as_str())
        .with_context(|| format!("--identity-header {:?} is not a header name", args.identity_header))?;
    let token = new_token()?;
    let ui = Arc::new(Ui {
        store,
        access: AccessPolicy::new(&token, args.trusted_proxies.clone(), Some(identity_header)).with_local_users(
            // SAFETY: geteuid has no preconditions and cannot fail.
            [0, unsafe { libc::geteuid() }]
                .into_iter()
                .chain(crate::access::group_member_uids("promptwall"))
                .collect(),
        ),
        show_bodies: args.show_bodies,
        config: config.clone(),
        doctor: tokio::sync::Mutex::new(()),
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}; pick another with --listen", args.listen))?;
    let addr = listener.local_addr()?;
    let open_url = format!("http://{addr}/?token={token}");
    if args.json {
        println!(
            "{}",
            serde_json::json!({"url": format!("http://{addr}/"), "token": token})
        );
    } else {
        println!(
            "promptwall UI on http://{addr}/ (store {})",
            promptwall_audit::store::redact_url(&url)
        );
        println!("open {open_url}");
        println!(
            "(root and the promptwall group get in from this host; anyone else needs this URL's token, new each start)"
        );
    }
    if args.open {
        let _ = std::process::Command::new("xdg-open").arg(&open_url).spawn();
    }
    loop {
        let (stream, peer) = listener.accept().await?;
        let ui = ui.clone();
        tokio::spawn(async move {
            // Who is on the other end, when it is this host: the kernel's
            // socket table names the owner of the client's socket.
            let peer_uid = if peer.ip().is_loopback() {
                let listening = stream.local_addr().ok();
                tokio::task::spawn_blocking(move || {
                    promptwall_proxy::peer::find_client(peer, listening?).map(|entry| entry.uid)
                })
                .await
                .ok()
                .flatten()
            } else {
                None
            };
            let service = hyper::service::service_fn(move |req| {
                let ui = ui.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(&ui, peer.ip(), peer_uid, req).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn new_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .context("cannot read /dev/urandom for the UI token")?;
    Ok(hex::encode(bytes))
}

pub type Body = BoxBody<Bytes, std::convert::Infallible>;

pub fn full(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-store")
        .header("x-content-type-options", "nosniff")
        // Store values are escaped by the page; this is the second wall:
        // no script but ours, no framing.
        .header(
            "content-security-policy",
            "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
        )
        .header("referrer-policy", "no-referrer")
        .body(Full::new(body.into()).boxed())
        .expect("static parts are valid")
}

const INDEX: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

fn query_params(req: &Request<Incoming>) -> HashMap<String, String> {
    req.uri()
        .query()
        .map(|q| {
            q.split('&')
                .filter_map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    Some((decode(k)?, decode(v)?))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `application/x-www-form-urlencoded` decoding of one query component.
fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

async fn handle(ui: &Ui, peer: IpAddr, peer_uid: Option<u32>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    // Static assets carry no data: no token needed, so the refusal page can style itself.
    match (req.method(), path.as_str()) {
        (&Method::GET, "/app.js") => return full(StatusCode::OK, "text/javascript; charset=utf-8", APP_JS),
        (&Method::GET, "/app.css") => return full(StatusCode::OK, "text/css; charset=utf-8", APP_CSS),
        _ => {}
    }
    let params = query_params(&req);
    let viewer = match ui
        .access
        .decide(peer, peer_uid, req.headers(), params.get("token").map(String::as_str))
    {
        Access::Allowed(v) => v,
        Access::SetCookie => {
            let token = params.get("token").cloned().unwrap_or_default();
            let mut resp = full(StatusCode::SEE_OTHER, "text/plain; charset=utf-8", "signed in\n");
            let cookie = format!("{}={token}; Path=/; HttpOnly; SameSite=Strict", access::COOKIE_NAME);
            resp.headers_mut()
                .insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("hex token"));
            resp.headers_mut()
                .insert(header::LOCATION, HeaderValue::from_static("/"));
            return resp;
        }
        Access::Refused => {
            return full(
                StatusCode::UNAUTHORIZED,
                "text/plain; charset=utf-8",
                "promptwall UI: not signed in. Open the URL `promptwall ui` printed (it carries a token), \
                 or come through the reverse proxy configured with --trusted-proxy.\n",
            )
        }
    };
    if req.method() != Method::GET {
        return full(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "the UI is read-only\n",
        );
    }
    match path.as_str() {
        "/" | "/index.html" => full(StatusCode::OK, "text/html; charset=utf-8", INDEX),
        "/api/live" => api::live(ui, params),
        p if p.starts_with("/api/") => api::json(ui, &viewer, p, &params).await,
        _ => full(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", "no such page\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn query_components_are_percent_and_plus_decoded_and_bad_escapes_refused() {
        assert_eq!(decode("claude-code").as_deref(), Some("claude-code"));
        assert_eq!(decode("a+b%2Fc").as_deref(), Some("a b/c"));
        assert_eq!(decode("%zz"), None);
        assert_eq!(decode("%4"), None);
        assert_eq!(decode("%ff"), None, "not UTF-8");
    }
}
