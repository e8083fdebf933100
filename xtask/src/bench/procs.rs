//! Processes the bench starts: each in its own process group, killed with
//! the bench (PR_SET_PDEATHSIG) and by its guard's Drop on any exit path;
//! plus the /proc readings the report needs (CPU time, RSS).

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A running child; SIGTERM then SIGKILL to its whole group on drop.
pub struct Guard {
    pub name: String,
    pub child: Child,
    /// Lines the child printed on stdout after its first one.
    pub lines: Option<mpsc::Receiver<String>>,
}

impl Guard {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let pgid = self.child.id() as i32;
        // SAFETY: kill(2) on our own child's process group.
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            eprintln!("==> {} ignored SIGTERM for 3 s; killing it", self.name);
        }
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// Own process group (the guard kills it whole) and death with the bench.
pub fn detach(cmd: &mut Command) {
    cmd.process_group(0);
    // SAFETY: prctl is async-signal-safe; nothing else runs in pre_exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// Starts `cmd` (stderr to `log`) and waits up to `timeout` for its first
/// stdout line (its readiness line).
pub fn spawn_ready(name: &str, mut cmd: Command, log: &Path, timeout: Duration) -> Result<(Guard, String)> {
    let err = std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    cmd.stdout(Stdio::piped()).stderr(err).stdin(Stdio::null());
    detach(&mut cmd);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {name} ({cmd:?}); was it built?"))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut guard = Guard {
        name: name.to_string(),
        child,
        lines: None,
    };
    match rx.recv_timeout(timeout) {
        Ok(line) => {
            guard.lines = Some(rx);
            Ok((guard, line))
        }
        Err(_) => {
            let alive = guard.alive();
            drop(guard);
            bail!(
                "{name} did not report ready within {timeout:?} ({}); see {}",
                if alive { "still running" } else { "it exited" },
                log.display()
            )
        }
    }
}

/// Starts `cmd` and waits until `addr` accepts TCP connections.
pub fn spawn_listening(name: &str, mut cmd: Command, log: &Path, addr: &str, timeout: Duration) -> Result<Guard> {
    let err = std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let out = err.try_clone()?;
    cmd.stdout(out).stderr(err).stdin(Stdio::null());
    detach(&mut cmd);
    let child = cmd.spawn().with_context(|| format!("cannot start {name} ({cmd:?})"))?;
    let mut guard = Guard {
        name: name.to_string(),
        child,
        lines: None,
    };
    let deadline = Instant::now() + timeout;
    loop {
        if std::net::TcpStream::connect(addr).is_ok() {
            return Ok(guard);
        }
        if !guard.alive() {
            bail!("{name} exited before listening on {addr}; see {}", log.display());
        }
        if Instant::now() > deadline {
            bail!(
                "{name} did not listen on {addr} within {timeout:?}; see {}",
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A free loopback port (bound then released; good enough on a quiet host).
pub fn free_port(ip: &str) -> Result<u16> {
    let l = std::net::TcpListener::bind((ip, 0)).with_context(|| format!("cannot bind {ip}:0"))?;
    Ok(l.local_addr()?.port())
}

/// utime + stime of `pid`, in seconds.
pub fn cpu_secs(pid: u32) -> Result<f64> {
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("process {pid} is gone"))?;
    let after = &stat[stat.rfind(')').context("malformed /proc stat")? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>()? + f[12].parse::<u64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks as f64 / hz)
}

/// A `VmXXX:` field of /proc/<pid>/status, in MiB.
pub fn status_mib(pid: u32, field: &str) -> Result<f64> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| format!("process {pid} is gone"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .with_context(|| format!("no {field} for {pid}"))?;
    let kb: f64 = line
        .split_whitespace()
        .nth(1)
        .context("malformed status line")?
        .parse()?;
    Ok(kb / 1024.0)
}

/// Resets VmHWM so the next reading is this scenario's peak (Linux ≥ 4.0).
pub fn reset_peak(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}
