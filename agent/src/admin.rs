//! The admin socket: `promptwall status` and `promptwall limits` ask the
//! running daemon for its state over a Unix socket readable only by root
//! and the promptwall group. One command per line, one JSON reply.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// Produces one of the daemon's documents on demand.
pub type StatusFn = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// What each admin command answers.
#[derive(Clone)]
pub struct Handlers {
    /// `status`: listeners, counters, interception.
    pub status: StatusFn,
    /// `limits`: every `[quota]` limit's standing per identity.
    pub limits: StatusFn,
}

pub struct AdminServer {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

pub fn serve(path: &Path, handlers: Handlers) -> anyhow::Result<AdminServer> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| {
            format!(
                "cannot create {}; run as root or set [listen] admin_socket",
                dir.display()
            )
        })?;
    }
    // A stale socket from a crashed daemon would make bind fail.
    let _ = std::fs::remove_file(path);
    let listener =
        UnixListener::bind(path).with_context(|| format!("cannot bind the admin socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    crate::access::chgrp_promptwall(path);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let handlers = handlers.clone();
            tokio::spawn(async move {
                let (rd, mut wr) = stream.into_split();
                let mut line = String::new();
                let mut rd = BufReader::new(rd);
                if rd.read_line(&mut line).await.is_err() {
                    return;
                }
                let reply = match line.trim() {
                    "status" => (handlers.status)(),
                    "limits" => (handlers.limits)(),
                    other => {
                        serde_json::json!({"error": format!("unknown admin command {other:?}; try \"status\" or \"limits\"")})
                    }
                };
                let _ = wr.write_all(format!("{reply}\n").as_bytes()).await;
            });
        }
    });
    Ok(AdminServer {
        path: path.to_path_buf(),
        task,
    })
}

pub async fn query(path: &Path, command: &str) -> anyhow::Result<serde_json::Value> {
    let stream = match UnixStream::connect(path).await {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => anyhow::bail!(
            "permission denied on {}: the admin socket is for root and the promptwall group; run with sudo or add yourself to the group",
            path.display()
        ),
        Err(e) => anyhow::bail!("cannot reach the promptwall daemon at {} ({e}); is `promptwall up` running?", path.display()),
    };
    let (rd, mut wr) = stream.into_split();
    wr.write_all(format!("{command}\n").as_bytes()).await?;
    let mut line = String::new();
    BufReader::new(rd).read_line(&mut line).await?;
    let reply: serde_json::Value = serde_json::from_str(&line).context("the daemon sent an unreadable reply")?;
    if let Some(e) = reply.get("error").and_then(|e| e.as_str()) {
        anyhow::bail!("the daemon refused {command:?}: {e} (is the daemon older than this CLI? restart it)");
    }
    Ok(reply)
}
