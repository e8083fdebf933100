//! A real Prometheus (Debian's `prometheus` package) scraping one target
//! every second, on loopback, with its own data directory; dropping it
//! kills the server.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::process::curl;

pub struct Prometheus {
    pub addr: SocketAddr,
    child: Child,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Where Debian installs it; None when it is missing (the caller skips
    /// unless `PROMPTWALL_REQUIRE_CLIENTS` says set-up installed it).
    pub fn binary() -> Option<PathBuf> {
        let path = PathBuf::from("/usr/bin/prometheus");
        if path.exists() {
            return Some(path);
        }
        assert!(
            std::env::var_os("PROMPTWALL_REQUIRE_CLIENTS").is_none(),
            "/usr/bin/prometheus is missing; run `cargo xtask setup`"
        );
        eprintln!("skipping: /usr/bin/prometheus is missing (cargo xtask setup installs it)");
        None
    }

    /// Starts scraping `target` (host:port, path `/metrics`) every second.
    pub fn scrape(binary: &PathBuf, target: SocketAddr) -> Prometheus {
        let dir = tempfile::Builder::new().prefix("promptwall-prom").tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: promptwall\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let addr = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("cannot start prometheus");
        let prom = Prometheus { addr, child, dir };
        prom.wait_ready();
        prom
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = curl(&["-f", &format!("http://{}/-/ready", self.addr)]);
            if out.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus never became ready:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// An instant PromQL query; the result vector (empty when no series).
    pub fn query(&self, promql: &str) -> Vec<Value> {
        let out = curl(&[
            "--data-urlencode",
            &format!("query={promql}"),
            &format!("http://{}/api/v1/query", self.addr),
        ]);
        out.expect_success("prometheus query");
        let doc: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("prometheus answered no JSON ({e}): {}", out.stdout));
        assert_eq!(doc["status"], "success", "query {promql}: {doc}");
        doc["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// The single value of a query that sums to one series, or None.
    pub fn value(&self, promql: &str) -> Option<f64> {
        let result = self.query(promql);
        let v = result.first()?["value"][1].as_str()?.to_string();
        v.parse().ok()
    }

    /// Polls `promql` until it equals `want` (bounded), returning the last
    /// value seen.
    pub fn wait_for_value(&self, promql: &str, want: f64, within: Duration) -> Option<f64> {
        let deadline = Instant::now() + within;
        loop {
            let v = self.value(promql);
            if v == Some(want) || Instant::now() >= deadline {
                return v;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}
