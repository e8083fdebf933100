//! Posting queued alerts: each due outbox row is signed at send time and
//! marked delivered only after its webhook answers 2xx; anything else (a
//! refused connection, a timeout, a 5xx, a 4xx) is retried with backoff.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use promptwall_audit::{Outbox, Pending};

use super::event::{backoff, render, signature};
use super::{Alerts, Webhook};

/// One post may take this long before it counts as failed.
const POST_TIMEOUT: Duration = Duration::from_secs(10);
/// Due rows looked at per round.
const BATCH: i64 = 50;

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Posts signed bodies to webhooks.
#[derive(Clone)]
pub struct Poster {
    client: HttpsClient,
}

impl Poster {
    /// Trusts the system's roots (the operator's receiver is a public or
    /// internal HTTPS endpoint the machine already trusts).
    pub fn new() -> anyhow::Result<Poster> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| anyhow::anyhow!("cannot load the system's CA certificates for webhooks: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Poster {
            client: Client::builder(TokioExecutor::new()).build(https),
        })
    }

    /// Posts `body` signed for `hook`; Ok(status) on any answer.
    pub async fn post(&self, hook: &Webhook, event_id: &str, body: String) -> Result<u16, String> {
        let ts = chrono::Utc::now().timestamp();
        let sig = signature(hook.secret(), ts, body.as_bytes());
        let req = http::Request::post(hook.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(
                http::header::USER_AGENT,
                concat!("promptwall/", env!("CARGO_PKG_VERSION")),
            )
            .header("x-promptwall-event-id", event_id)
            .header("x-promptwall-timestamp", ts.to_string())
            .header("x-promptwall-signature", sig)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        let send = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| promptwall_proxy::stages::error_chain(&e))?;
            let status = resp.status().as_u16();
            // Read (and drop) the answer so the connection can be reused.
            let _ = resp.into_body().collect().await;
            Ok(status)
        };
        tokio::time::timeout(POST_TIMEOUT, send)
            .await
            .map_err(|_| format!("no answer within {} s", POST_TIMEOUT.as_secs()))?
    }
}

impl Alerts {
    /// Delivers due rows until the task is aborted: at once when an event
    /// is queued, else every second.
    pub fn spawn_deliverer(&self, poster: Poster) -> tokio::task::JoinHandle<()> {
        let alerts = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = alerts.deliver_due(&poster).await {
                    tracing::warn!("alert delivery round failed: {e:#}; retrying");
                }
                tokio::select! {
                    _ = alerts.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        })
    }

    async fn deliver_due(&self, poster: &Poster) -> anyhow::Result<()> {
        let now = promptwall_audit::time::now_ts();
        for p in self.outbox.due(&now, BATCH).await? {
            self.deliver(poster, &self.outbox, p).await?;
        }
        Ok(())
    }

    async fn deliver(&self, poster: &Poster, outbox: &Outbox, p: Pending) -> anyhow::Result<()> {
        let Some(hook) = self.webhooks.iter().find(|w| w.name == p.webhook) else {
            let later = later(Duration::from_secs(3600));
            outbox
                .retry_later(p.seq, &later, "webhook no longer configured; kept in case it returns")
                .await?;
            return Ok(());
        };
        let body = render(hook.format, &p.body);
        match poster.post(hook, &p.event_id, body).await {
            Ok(status) if (200..300).contains(&status) => {
                outbox.delivered(p.seq, &promptwall_audit::time::now_ts()).await?;
                tracing::info!(webhook = %hook.name, id = %p.event_id, "alert delivered");
            }
            outcome => {
                let why = match outcome {
                    Ok(status) => format!("the webhook answered {status}"),
                    Err(e) => e,
                };
                let wait = backoff(p.attempts);
                tracing::warn!(webhook = %hook.name, id = %p.event_id, "alert not delivered ({why}); retrying in {} s", wait.as_secs());
                outbox.retry_later(p.seq, &later(wait), &why).await?;
            }
        }
        Ok(())
    }
}

fn later(d: Duration) -> String {
    promptwall_audit::time::format_ts(chrono::Utc::now() + chrono::Duration::from_std(d).unwrap_or_default())
}
