//! Wiring: binds the listeners and runs them with one shared [`Proxy`].

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::audit_sink::{AuditSink, Recorder};
use crate::config::Config;
use crate::forward::Proxy;
use crate::pipeline::Inspector;
use crate::stats::Stats;
use crate::transparent::OriginSource;
use crate::upstream::Upstream;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot listen on {addr} for the {what} listener: {source}; pick a free address in [listen] or stop what uses it")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Upstream(#[from] crate::upstream::UpstreamError),
    #[error("the inspection pipeline could not be built: {0}; fix [pipeline] in the config")]
    Pipeline(String),
    #[error("the {0} listener needs TLS, but no CA is loaded; run `promptwall ca init` first")]
    NoTls(&'static str),
    #[error("[routing] is invalid: {0}")]
    Routing(String),
    #[error("[quota] cannot be set up: {0}")]
    Quota(String),
}

/// What the daemon plugs into the proxy.
pub struct Deps {
    pub audit: AuditSink,
    /// Server config whose cert resolver mints leaves per SNI.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub origins: Option<OriginSource>,
    /// API shapes requests are classified into (`Shapes::builtin()`).
    pub shapes: promptwall_llm::Shapes,
}

pub struct Running {
    pub explicit: Option<SocketAddr>,
    pub explicit_tls: Option<SocketAddr>,
    pub transparent: Option<SocketAddr>,
    pub stats: Stats,
    pub proxy: Arc<Proxy>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, AppError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| AppError::Bind { what, addr, source })
}

pub async fn start(config: Config, deps: Deps) -> Result<Running, AppError> {
    let config = Arc::new(config);
    let stats = Stats::default();
    let inspector = Arc::new(Inspector::new(&config).map_err(AppError::Pipeline)?);
    let scrubber = inspector.clone();
    // The one place every row passes, so no path can store an unscrubbed one.
    let recorder = Recorder::new(
        deps.audit,
        Arc::new(move |row| scrubber.scrub_record(row)),
        stats.clone(),
        crate::audit_space::AuditSpace::new(&config.audit.url, config.audit.min_free_bytes),
    );
    let proxy = Arc::new(Proxy {
        upstream: Upstream::new(&config)?,
        recorder,
        inspector,
        shapes: deps.shapes,
        stats: stats.clone(),
        admission: crate::admission::Admission::new(&config.limits),
        // Validated with the config; empty means no header.
        request_id_header: http::HeaderName::try_from(config.listen.request_id_header.as_str()).ok(),
        router: Arc::new(
            crate::routing::Router::compile(&config.routing, Arc::new(crate::routing::SystemClock))
                .map_err(AppError::Routing)?,
        ),
        quota: crate::quota::Quota::new(&config.quota, Arc::new(crate::clock::SystemClock)).map_err(AppError::Quota)?,
        prices: Arc::new(
            promptwall_audit::PriceTable::load(config.audit.price_table.as_deref())
                .map_err(|e| AppError::Quota(e.to_string()))?,
        ),
        machine_id: config.machine_id(),
        tokens: Default::default(),
        config: config.clone(),
    });
    let mut tasks = Vec::new();
    let mut running = Running {
        explicit: None,
        explicit_tls: None,
        transparent: None,
        stats,
        proxy: proxy.clone(),
        tasks: Vec::new(),
    };
    if let Some(addr) = config.listen.explicit {
        let l = bind("explicit", addr).await?;
        running.explicit = l.local_addr().ok();
        tasks.push(tokio::spawn(crate::explicit::run(proxy.clone(), l, None)));
    }
    if let Some(addr) = config.listen.explicit_tls {
        let tls = deps.tls.clone().ok_or(AppError::NoTls("explicit_tls"))?;
        let l = bind("explicit_tls", addr).await?;
        running.explicit_tls = l.local_addr().ok();
        tasks.push(tokio::spawn(crate::explicit::run(
            proxy.clone(),
            l,
            Some(TlsAcceptor::from(tls)),
        )));
    }
    if let (Some(addr), Some(origins)) = (config.listen.transparent, deps.origins) {
        let tls = deps.tls.clone().ok_or(AppError::NoTls("transparent"))?;
        let l = bind("transparent", addr).await?;
        running.transparent = l.local_addr().ok();
        tasks.push(tokio::spawn(crate::transparent::run(
            proxy.clone(),
            l,
            TlsAcceptor::from(tls),
            Arc::new(origins),
        )));
    }
    running.tasks = tasks;
    Ok(running)
}
