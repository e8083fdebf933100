//! `promptwall up`: the daemon. Opens the audit store, loads the org CA,
//! starts the listeners, attaches the redirect, and serves the admin socket
//! until SIGINT/SIGTERM; then detaches everything it attached.

use std::sync::Arc;

use crate::config::AgentConfig;
use anyhow::Context;
use promptwall_audit::{AuditRecord, AuditStore, AuditWriter};
use promptwall_proxy::app::{self, Deps};
use promptwall_proxy::audit_sink::AuditSink;

#[derive(clap::Args)]
pub struct UpArgs {
    /// Explicit mode only: don't attach the redirect, even if [intercept] enabled.
    #[arg(long)]
    pub no_intercept: bool,
}

pub async fn run(args: UpArgs, mut config: AgentConfig) -> anyhow::Result<()> {
    init_tracing();
    if args.no_intercept {
        config.intercept.enabled = false;
    }
    let machine_id = config.machine_id();

    let store = AuditStore::open_for_writing(&config.audit.url, config.audit.sync)
        .await
        .with_context(|| {
            format!(
                "cannot open the audit store {}",
                promptwall_audit::store::redact_url(&config.audit.url)
            )
        })?;
    let writer_options = crate::cli::audit::writer_options(&config, &machine_id)?;
    // Metrics price rows with the writer's table, loaded once.
    let prices = writer_options.prices.clone();
    let writer = AuditWriter::spawn(store.clone(), writer_options);
    let _retention = crate::cli::audit::start_retention(&store, &config);
    let shipper = match &config.audit.central {
        Some(central) if !central.url.is_empty() => {
            Some(crate::cli::audit::start_shipper(&store, central, &machine_id).await?)
        }
        _ => None,
    };
    let webhooks = config
        .alerts
        .webhooks
        .iter()
        .map(crate::alerts::Webhook::load)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let alerts = crate::alerts::Alerts::new(promptwall_audit::Outbox::new(&store), webhooks, machine_id.clone());
    // Metrics are kept only when something reads them.
    let metrics = config
        .listen
        .admin_http
        .map(|_| Arc::new(crate::metrics::Metrics::new(prices)));
    let audit = with_secret_alerts(
        timed(audit_sink(writer, machine_id.clone()), metrics.clone()),
        alerts.clone(),
    );

    promptwall_proxy::containers::ContainerRecords::install(config.containers.clone());
    let tls = crate::cli::ca::load_server_tls(&config).context("cannot load the org CA for TLS termination")?;
    if config.intercept.enabled && tls.is_none() {
        anyhow::bail!(
            "transparent interception needs the org CA, but none is in {}; run `promptwall ca init` (or `ca import`), or start with --no-intercept",
            config.ca.dir.display()
        );
    }

    // Upstream sockets must carry the mark, or the redirect would loop.
    if !config.intercept.enabled {
        config.upstream.mark = 0;
    } else {
        promptwall_proxy::socket::verify_mark_capability(config.upstream.mark).context(
            "cannot set SO_MARK on sockets; promptwall needs CAP_NET_ADMIN (run as root) for transparent interception",
        )?;
    }

    let intercept = if config.intercept.enabled {
        Some(crate::intercept::start(&config).await?)
    } else {
        None
    };
    let origins = intercept.as_ref().map(|i| i.origin_source());
    let tls_for_containers = tls.clone().map(tokio_rustls::TlsAcceptor::from);

    let running = app::start(
        config.proxy(),
        Deps {
            audit,
            tls,
            origins,
            shapes: promptwall_llm::Shapes::builtin(),
        },
    )
    .await?;
    if let Some(i) = &intercept {
        i.proxy_ready(&running, tls_for_containers).await?;
    }

    let stats = running.stats.clone();
    let mut background = vec![crate::cli::token::spawn_refresher(store.clone(), running.proxy.clone())];
    match &config.audit.central {
        Some(central) if !central.url.is_empty() && running.proxy.quota.has_fleet_limits() => {
            background.push(crate::fleet::spawn(
                central.url.clone(),
                machine_id.clone(),
                running.proxy.quota.clone(),
            ));
        }
        _ if running.proxy.quota.has_fleet_limits() => {
            tracing::warn!("[quota] has fleet limits but [audit.central] is not set: they count per machine");
        }
        _ => {}
    }
    if !alerts.is_empty() {
        let budget_alerts = alerts.clone();
        running.proxy.quota.on_event(Arc::new(move |e| {
            let event = crate::alerts::budget_event(budget_alerts.machine_id(), &e);
            budget_alerts.emit_later(crate::alerts::EventKind::Budget, event);
        }));
        background.push(alerts.spawn_deliverer(crate::alerts::deliver::Poster::new()?));
        let learned_stats = stats.clone();
        background.push(crate::alerts::watch::spawn(
            alerts.clone(),
            config.alerts.clone(),
            store.clone(),
            move || learned_stats.learned.learned(),
            intercept.as_ref().map(|i| i.status_fn()),
        ));
    }
    let traces = if config.traces.enabled() {
        let traces = Arc::new(crate::traces::Traces::start(&config.traces, &machine_id)?);
        running.proxy.recorder.observers.add(traces.clone());
        tracing::info!(endpoint = %config.traces.endpoint, "exporting a span per exchange over OTLP");
        Some(traces)
    } else {
        None
    };
    let admin_http = match &metrics {
        Some(m) => {
            running.proxy.recorder.observers.add(m.clone());
            m.add_source(daemon_samples(
                stats.clone(),
                intercept.as_ref().map(|i| i.status_fn()),
                shipper.as_ref().map(|s| s.progress()),
            ));
            let addr = config.listen.admin_http.expect("metrics exist only with admin_http");
            Some(crate::admin_http::serve(addr, m.clone()).await?)
        }
        None => None,
    };
    let listeners = serde_json::json!({
        "explicit": running.explicit.map(|a| a.to_string()),
        "explicit_tls": running.explicit_tls.map(|a| a.to_string()),
        "transparent": running.transparent.map(|a| a.to_string()),
        "admin_http": admin_http.as_ref().map(|a| a.addr.to_string()),
    });
    let intercept_status = intercept.as_ref().map(|i| i.status_fn());
    let started = std::time::Instant::now();
    let status_doc: crate::admin::StatusFn = Arc::new(move || {
        use std::sync::atomic::Ordering::Relaxed;
        serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "uptime_secs": started.elapsed().as_secs(),
            "machine_id": machine_id,
            "listeners": listeners,
            "counts": {
                "connections": stats.connections.load(Relaxed),
                "requests": stats.requests.load(Relaxed),
                "tls_intercepted": stats.tls_intercepted.load(Relaxed),
                "tls_passthrough": stats.tls_passthrough.load(Relaxed),
                "tls_handshake_failures": stats.tls_handshake_failures.load(Relaxed),
                "audit_errors": stats.audit_errors.load(Relaxed),
            },
            "intercept": intercept_status.as_ref().map(|f| f()),
            "learned_passthrough": stats.learned.learned(),
        })
    });
    let quota = running.proxy.quota.clone();
    let handlers = crate::admin::Handlers {
        status: status_doc,
        limits: Arc::new(move || serde_json::json!({ "limits": quota.standings() })),
    };
    let _admin = match crate::admin::serve(&config.listen.admin_socket, handlers) {
        Ok(a) => Some(a),
        Err(e) => {
            tracing::warn!("admin socket disabled: {e:#}");
            None
        }
    };

    // Readiness line for scripts and tests.
    println!(
        "{}",
        serde_json::json!({"ready": true, "explicit": running.explicit, "explicit_tls": running.explicit_tls, "transparent": running.transparent, "admin_http": admin_http.as_ref().map(|a| a.addr)})
    );
    tracing::info!(explicit = ?running.explicit, transparent = ?running.transparent, "promptwall is up");

    wait_for_shutdown().await;
    background.iter().for_each(|t| t.abort());
    tracing::info!("shutting down: detaching the redirect first so traffic goes direct");
    drop(intercept);
    drop(running);
    if let Some(traces) = traces {
        // Blocking: the SDK flushes its batch over HTTP.
        let _ = tokio::task::spawn_blocking(move || traces.shutdown()).await;
    }
    if let Some(s) = shipper {
        s.shutdown().await;
    }
    store.close().await;
    Ok(())
}

async fn wait_for_shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PROMPTWALL_LOG").unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// After a row of a request refused for a secret commits, an alert.
fn with_secret_alerts(inner: AuditSink, alerts: crate::alerts::Alerts) -> AuditSink {
    if alerts.is_empty() {
        return inner;
    }
    Arc::new(move |rec: AuditRecord| {
        let event = crate::alerts::secret_event(alerts.machine_id(), &rec);
        let write = inner(rec);
        let alerts = alerts.clone();
        Box::pin(async move {
            let result = write.await;
            if let (Ok(()), Some(event)) = (&result, event) {
                alerts.emit_later(crate::alerts::EventKind::Secret, event);
            }
            result
        })
    })
}

/// Times each row's commit for `promptwall_audit_write_seconds`.
fn timed(inner: AuditSink, metrics: Option<Arc<crate::metrics::Metrics>>) -> AuditSink {
    let Some(metrics) = metrics else { return inner };
    Arc::new(move |rec: AuditRecord| {
        let timer = metrics.audit_write_started();
        let write = inner(rec);
        Box::pin(async move {
            let result = write.await;
            drop(timer);
            result
        })
    })
}

/// What the daemon already counts, read at each scrape.
fn daemon_samples(
    stats: promptwall_proxy::stats::Stats,
    intercept: Option<crate::admin::StatusFn>,
    shipping: Option<promptwall_audit::ShipProgress>,
) -> impl Fn() -> Vec<crate::metrics::Sample> + Send + Sync + 'static {
    use crate::metrics::Sample;
    use std::sync::atomic::Ordering::Relaxed;
    move || {
        let tls = "TLS connections by outcome: intercepted (terminated and inspected), passthrough (spliced), handshake_failed";
        let mut out = vec![
            Sample::counter(
                "promptwall_connections",
                "Client connections accepted on every listener",
                stats.connections.load(Relaxed),
            ),
            Sample::counter("promptwall_tls_connections", tls, stats.tls_intercepted.load(Relaxed))
                .with("outcome", "intercepted"),
            Sample::counter("promptwall_tls_connections", tls, stats.tls_passthrough.load(Relaxed))
                .with("outcome", "passthrough"),
            Sample::counter(
                "promptwall_tls_connections",
                tls,
                stats.tls_handshake_failures.load(Relaxed),
            )
            .with("outcome", "handshake_failed"),
            Sample::counter(
                "promptwall_audit_errors",
                "Audit rows the store refused (each failed its exchange)",
                stats.audit_errors.load(Relaxed),
            ),
            Sample::gauge(
                "promptwall_audit_healthy",
                "1 while rows commit; 0 while the store refuses them (new requests are refused then)",
                if stats.audit_unhealthy.load(Relaxed) { 0.0 } else { 1.0 },
            ),
            Sample::gauge(
                "promptwall_learned_passthroughs",
                "Programs whose certificate rejections made their connections pass uninspected",
                stats.learned.learned().len() as f64,
            ),
        ];
        if let Some(status) = intercept.as_ref().map(|f| f()) {
            let events = "Redirect events counted by the eBPF programs (map promptwall counters), by event";
            if let Some(counters) = status.get("counters").and_then(|c| c.as_object()) {
                for (event, n) in counters {
                    out.push(
                        Sample::counter("promptwall_intercept_events", events, n.as_u64().unwrap_or(0))
                            .with("event", event.clone()),
                    );
                }
            }
            if let Some(age) = status.get("heartbeat_age_ms").and_then(|a| a.as_u64()) {
                out.push(Sample::gauge(
                    "promptwall_intercept_heartbeat_age_seconds",
                    "Age of the redirect's last heartbeat (the eBPF programs still run while it is small)",
                    age as f64 / 1000.0,
                ));
            }
            let prefixes = status
                .get("provider_prefixes")
                .and_then(|p| p.as_array())
                .map_or(0, |p| p.len());
            out.push(Sample::gauge(
                "promptwall_intercept_provider_prefixes",
                "Provider address prefixes currently redirected",
                prefixes as f64,
            ));
        }
        if let Some(shipping) = &shipping {
            out.push(Sample::counter(
                "promptwall_central_ship_failures",
                "Failed attempts to ship audit rows to the central store",
                shipping.failed_attempts(),
            ));
            if let Some(at) = shipping.last_drained() {
                let secs = at
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs_f64();
                out.push(Sample::gauge(
                    "promptwall_central_last_drained_timestamp_seconds",
                    "When the local spool was last fully shipped; shipping lag is time() minus this",
                    secs,
                ));
            }
        }
        out
    }
}

/// The durable writer behind the proxy's audit sink; rows carry this
/// machine's id.
fn audit_sink(writer: AuditWriter, machine_id: String) -> AuditSink {
    Arc::new(move |mut rec: AuditRecord| {
        let writer = writer.clone();
        rec.machine_id = machine_id.clone();
        Box::pin(async move { writer.write(rec).await.map(|_| ()).map_err(|e| e.to_string()) })
    })
}
