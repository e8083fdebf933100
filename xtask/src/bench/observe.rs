//! Watching a promptwall while it works, as an operator would: Prometheus
//! scraping `/metrics` every second and the web UI's Live page streaming
//! from its audit store. The bench runs the same load through a watched and
//! an unwatched instance, and times the scrape itself.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::procs::{self, Guard};
use super::services::{Bins, Promptwall};

pub struct Watchers {
    metrics: String,
    stop: Arc<AtomicBool>,
    _ui: Guard,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Watchers {
    pub fn start(bins: &Bins, pw: &Promptwall) -> Result<Watchers> {
        let metrics = pw
            .admin_http
            .clone()
            .context("the watched promptwall did not report its admin_http listener")?;
        let mut ui = Command::new(bins.promptwall());
        ui.arg("--config")
            .arg(&pw.config)
            .args(["ui", "--listen", "127.0.0.1:0", "--json"]);
        let log = pw.config.with_file_name("ui.log");
        let (guard, line) = procs::spawn_ready("promptwall ui", ui, &log, Duration::from_secs(30))?;
        let v: Value = serde_json::from_str(&line).with_context(|| format!("promptwall ui printed {line}"))?;
        let ui_addr = v["url"]
            .as_str()
            .context("no UI url")?
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let token = v["token"].as_str().context("no UI token")?.to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        // The Live page: one SSE stream, read to the end.
        let mut live = TcpStream::connect(&ui_addr)?;
        write!(
            live,
            "GET /api/live?since=1h HTTP/1.1\r\nhost: {ui_addr}\r\nauthorization: Bearer {token}\r\n\r\n"
        )?;
        live.set_read_timeout(Some(Duration::from_millis(500)))?;
        let s = stop.clone();
        threads.push(std::thread::spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            while !s.load(Ordering::Relaxed) {
                match live.read(&mut buf) {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                    Err(_) => return,
                }
            }
        }));
        // Prometheus: a scrape a second.
        let s = stop.clone();
        let target = metrics.clone();
        threads.push(std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let _ = scrape(&target);
                for _ in 0..10 {
                    if s.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }));
        Ok(Watchers {
            metrics,
            stop,
            _ui: guard,
            threads,
        })
    }

    /// `n` scrapes one after another: their times and the page's size.
    pub fn scrape_times(&self, n: usize) -> Result<Value> {
        let mut ms = Vec::with_capacity(n);
        let mut bytes = 0;
        for _ in 0..n {
            let t = Instant::now();
            bytes = scrape(&self.metrics)?;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        ms.sort_by(f64::total_cmp);
        let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
        Ok(json!({"scrapes": n, "bytes": bytes, "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": at(1.0)}))
    }
}

impl Drop for Watchers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// One `GET /metrics` on a fresh connection (as Prometheus does by
/// default); the body's size.
fn scrape(addr: &str) -> Result<usize> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET /metrics HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n")?;
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status)?;
    anyhow::ensure!(status.contains(" 200 "), "/metrics answered {status:?}");
    let mut body = Vec::new();
    r.read_to_end(&mut body)?;
    Ok(body.len())
}
