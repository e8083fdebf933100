//! Accept loop (TLS with ClientHello capture, or plain), HTTP/1.1 and h2 via
//! hyper's auto builder, routing, and recording.

use std::convert::Infallible;
use std::sync::Arc;

use http::{HeaderMap, Method, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming as HyperBody;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::LazyConfigAcceptor;

use crate::record::{ConnInfo, RecordedRequest, Recorder};
use crate::reply::{error_reply, full, Body, Flavor, Reply};
use crate::tls::TestCa;
use crate::{anthropic, copilot, embeddings, gemini, openai_chat, responses, ws, FakeOptions, Incoming};

pub struct Shared {
    pub opts: FakeOptions,
    pub recorder: Arc<Recorder>,
    /// None in plain-HTTP mode.
    pub ca: Option<Arc<TestCa>>,
}

pub async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Connections live in the set, so aborting this task closes them all.
    let mut conns = JoinSet::new();
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            }
        };
        while conns.try_join_next().is_some() {}
        conns.spawn(connection(tcp, shared.clone()));
    }
}

async fn connection(tcp: TcpStream, shared: Arc<Shared>) {
    let _ = tcp.set_nodelay(true);
    let Some(ca) = shared.ca.clone() else {
        return serve_http(TokioIo::new(tcp), shared, ConnInfo::default()).await;
    };
    let start = match LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp).await {
        Ok(start) => start,
        Err(e) => return tracing::debug!("not a TLS ClientHello: {e}"),
    };
    let hello = start.client_hello();
    let sni = hello.server_name().map(str::to_string);
    let alpn_offered: Vec<String> = hello
        .alpn()
        .map(|protos| protos.map(|p| String::from_utf8_lossy(p).into_owned()).collect())
        .unwrap_or_default();
    let config = match ca.server_config(sni.as_deref()) {
        Ok(c) => c,
        Err(e) => return tracing::warn!("cannot mint a leaf for {sni:?}: {e}"),
    };
    let tls = match start.into_stream(config).await {
        Ok(tls) => tls,
        Err(e) => return tracing::debug!("TLS handshake failed for {sni:?}: {e}"),
    };
    let alpn = tls
        .get_ref()
        .1
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    static NEXT_CONN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let conn_id = NEXT_CONN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    serve_http(
        TokioIo::new(tls),
        shared,
        ConnInfo {
            tls: true,
            sni,
            alpn_offered,
            alpn,
            conn_id,
        },
    )
    .await
}

async fn serve_http<IO>(io: TokioIo<IO>, shared: Arc<Shared>, conn: ConnInfo)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| handle(req, shared.clone(), conn.clone()));
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    if let Err(e) = builder.serve_connection_with_upgrades(io, svc).await {
        tracing::debug!("connection ended: {e}");
    }
}

pub fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

async fn handle(req: Request<HyperBody>, shared: Arc<Shared>, conn: ConnInfo) -> Result<Response<Body>, Infallible> {
    let method = req.method().clone();
    let uri = req.uri().clone();
    let version = format!("{:?}", req.version());
    let headers = req.headers().clone();
    let record = |body: bytes::Bytes, json, status: u16, usage| RecordedRequest {
        seq: 0,
        transport: "http",
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        version: version.clone(),
        headers: header_pairs(&headers),
        body,
        json,
        conn: conn.clone(),
        status,
        reply_usage: usage,
    };

    if method == Method::GET && matches!(uri.path(), "/v1/responses" | "/backend-api/codex/responses") {
        let reply = if shared.opts.ws && ws::is_upgrade(&headers) {
            ws::accept(req, shared.clone(), conn.clone(), uri.path().to_string())
        } else {
            return Ok({
                shared.recorder.push(record(Default::default(), None, 426, None));
                ws::refuse()
            });
        };
        shared
            .recorder
            .push(record(Default::default(), None, reply.status, None));
        return Ok(reply.into_response());
    }

    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            tracing::debug!("client body failed: {e}");
            return Ok(error_reply(Flavor::OpenAi, 400, "The request body could not be read.").into_response());
        }
    };
    let json = serde_json::from_slice(&body).ok();
    let inc = Incoming {
        headers: &headers,
        query: uri.query(),
        body: &body,
        json: json.as_ref(),
        opts: &shared.opts,
    };
    if shared.opts.think_delay_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(shared.opts.think_delay_ms)).await;
    }
    let mut reply = route(&method, uri.path(), &inc);
    if let Some(secs) = crate::scenario::retry_after_trigger(&headers) {
        for (name, value) in reply.headers.iter_mut() {
            if name.eq_ignore_ascii_case("retry-after") {
                *value = secs.to_string();
            }
        }
    }
    if let Some(n) = headers
        .get("x-fake-split-bytes")
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
    {
        reply.body = crate::reply::split_frames(reply.body, n.max(1));
    }
    shared
        .recorder
        .push(record(body.clone(), json.clone(), reply.status, reply.usage));
    Ok(reply.into_response())
}

fn route(method: &Method, path: &str, inc: &Incoming) -> Reply {
    match (method.as_str(), path) {
        ("POST", "/v1/messages") => anthropic::messages(inc),
        ("POST", "/v1/messages/count_tokens") => anthropic::count_tokens(inc),
        // GitHub Copilot's API has no `/v1` before these two.
        ("POST", "/v1/chat/completions" | "/chat/completions") => openai_chat::completions(inc),
        ("POST", "/responses") => responses::create(inc),
        ("GET", "/copilot_internal/user") => copilot::user(),
        ("GET", "/models") => copilot::models(),
        // Codex signed in with ChatGPT uses the backend path for the same API.
        ("POST", "/v1/responses" | "/backend-api/codex/responses") => responses::create(inc),
        ("POST", "/v1/embeddings") => embeddings::embeddings(inc),
        (m, p) if gemini::model_method(p).is_some() => gemini::route(m, p, inc),
        ("GET", "/backend-api/codex/models") => Reply::json(200, &json!({"models": []})),
        ("HEAD", "/" | "/api/hello") => Reply {
            status: 200,
            headers: vec![],
            body: full(""),
            usage: None,
        },
        ("GET", "/" | "/api/hello") => Reply::json(200, &json!({"ok": true})),
        _ => {
            let flavor = if path.starts_with("/v1/messages") || path.starts_with("/api/") {
                Flavor::Anthropic
            } else if gemini::is_google_path(path) {
                Flavor::Google
            } else {
                Flavor::OpenAi
            };
            let status = inc.opts.unknown_status;
            let mut reply = error_reply(
                flavor,
                status,
                &format!("{method} {path} is not served by the fake provider."),
            );
            if *method == Method::HEAD {
                reply.body = full("");
            }
            reply
        }
    }
}
