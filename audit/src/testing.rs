//! Test support: a private PostgreSQL cluster on loopback in a temp dir,
//! started from the distribution's server binaries (initdb, pg_ctl). Used by
//! this crate's tests and by the end-to-end tests.
//!
//! As root, the server runs as the `postgres` user (or `nobody`), because
//! PostgreSQL refuses to run as root. Set `PROMPTWALL_SKIP_PG=1` to skip
//! PostgreSQL tests on a machine without the server packages.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::AuditError;

pub const SKIP_ENV: &str = "PROMPTWALL_SKIP_PG";

pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// (uid, gid) the server runs as when we are root.
    run_as: Option<(u32, u32)>,
    running: bool,
}

impl PgCluster {
    /// `Ok(None)` when PROMPTWALL_SKIP_PG=1; otherwise a running cluster,
    /// or an error saying how to install the server.
    pub fn start_unless_skipped() -> Result<Option<PgCluster>, AuditError> {
        if std::env::var(SKIP_ENV).as_deref() == Ok("1") {
            eprintln!("{SKIP_ENV}=1: skipping the PostgreSQL test");
            return Ok(None);
        }
        PgCluster::start().map(Some)
    }

    /// Newest /usr/lib/postgresql/<version>/bin holding initdb and pg_ctl.
    pub fn find_bin_dir() -> Option<PathBuf> {
        if let Ok(dir) = std::env::var("PROMPTWALL_PG_BIN") {
            let dir = PathBuf::from(dir);
            return (dir.join("initdb").exists() && dir.join("pg_ctl").exists()).then_some(dir);
        }
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let version: u32 = e.file_name().to_str()?.parse().ok()?;
                let bin = e.path().join("bin");
                (bin.join("initdb").exists() && bin.join("pg_ctl").exists()).then_some((version, bin))
            })
            .collect();
        versions.sort();
        versions.pop().map(|(_, bin)| bin)
    }

    pub fn start() -> Result<PgCluster, AuditError> {
        let bin = Self::find_bin_dir().ok_or_else(|| {
            AuditError::PgCluster(format!(
                "PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin; \
                 run `cargo xtask setup` (installs the apt package postgresql), or set {SKIP_ENV}=1 to skip PostgreSQL tests"
            ))
        })?;
        let dir = tempfile::Builder::new()
            .prefix("promptwall-pg-")
            .tempdir()
            .map_err(|e| fail("create temp dir", e))?;
        let run_as = server_identity()?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).map_err(|e| fail("chown temp dir", e))?;
        }
        let port = free_port()?;
        let mut cluster = PgCluster {
            dir,
            bin,
            port,
            run_as,
            running: false,
        };
        let data = cluster.data_dir();
        cluster.run(
            "initdb",
            &[
                "-D",
                path_str(&data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        )?;
        cluster.start_server()?;
        Ok(cluster)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// URL of database `db` as the superuser `postgres` (trust auth on loopback).
    pub fn url(&self, db: &str) -> String {
        self.url_as("postgres", db)
    }

    pub fn url_as(&self, user: &str, db: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/{db}", self.port)
    }

    /// Starts (or restarts after [`stop`](Self::stop)) the server; waits until it accepts connections.
    pub fn start_server(&mut self) -> Result<(), AuditError> {
        let data = self.data_dir();
        let log = self.dir.path().join("server.log");
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} -c fsync=off -c max_connections=50",
            self.port,
            path_str(self.dir.path())
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                path_str(&data),
                "-l",
                path_str(&log),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        )?;
        self.running = true;
        Ok(())
    }

    /// Fast shutdown: clients are disconnected, as when the central store goes down.
    pub fn stop(&mut self) -> Result<(), AuditError> {
        let data = self.data_dir();
        self.run(
            "pg_ctl",
            &["-D", path_str(&data), "-m", "fast", "-w", "-t", "60", "stop"],
        )?;
        self.running = false;
        Ok(())
    }

    fn run(&self, tool: &str, args: &[&str]) -> Result<Output, AuditError> {
        let program = self.bin.join(tool);
        let mut cmd = match self.run_as {
            Some((uid, gid)) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .arg("--clear-groups")
                    .arg(&program);
                c
            }
            None => Command::new(&program),
        };
        cmd.args(args).env("LC_ALL", "C").current_dir(self.dir.path());
        let out = cmd
            .output()
            .map_err(|e| fail(&format!("run {}", program.display()), e))?;
        if !out.status.success() {
            let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
            return Err(AuditError::PgCluster(format!(
                "{tool} {args:?} failed ({}): {}{}\nserver log:\n{log}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(out)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.running {
            let data = self.data_dir();
            let _ = self.run("pg_ctl", &["-D", path_str(&data), "-m", "immediate", "-w", "stop"]);
        }
    }
}

fn fail(what: &str, e: std::io::Error) -> AuditError {
    AuditError::PgCluster(format!("cannot {what}: {e}"))
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

fn free_port() -> Result<u16, AuditError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| fail("find a free loopback port", e))?;
    Ok(listener.local_addr().map_err(|e| fail("read the port", e))?.port())
}

/// PostgreSQL refuses to run as root: pick `postgres`, else `nobody`.
fn server_identity() -> Result<Option<(u32, u32)>, AuditError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    for name in ["postgres", "nobody"] {
        let cname = std::ffi::CString::new(name).expect("no NUL");
        // SAFETY: getpwnam with a valid C string; fields copied immediately.
        let pw = unsafe { libc::getpwnam(cname.as_ptr()) };
        if !pw.is_null() {
            return Ok(Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) }));
        }
    }
    Err(AuditError::PgCluster(
        "running as root but neither user postgres nor nobody exists to run the server".into(),
    ))
}
