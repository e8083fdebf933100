//! Test cgroups: created under the cgroup2 mount as
//! `promptwall-test-<pid>-<tag>-<n>` (so `promptwall cleanup` removes them
//! once this process is gone, and leaves them alone while it runs), and
//! removed on drop, also when the test fails: whatever still runs in them
//! (or in a child cgroup a test made, e.g. a container's) is killed first.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The cgroup2 mount point, from /proc/self/mountinfo.
pub fn cgroup2_mount() -> PathBuf {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("cannot read /proc/self/mountinfo");
    mountinfo
        .lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let mnt = left.split_whitespace().nth(4)?;
            right.starts_with("cgroup2 ").then(|| PathBuf::from(mnt))
        })
        .expect("no cgroup2 mount: the eBPF redirect needs cgroup v2")
}

/// A cgroup this test made; removed (with its children) on drop.
#[derive(Debug)]
pub struct TestCgroup {
    path: PathBuf,
}

impl TestCgroup {
    /// A fresh cgroup under the cgroup2 mount.
    pub fn create(tag: &str) -> TestCgroup {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "promptwall-test-{}-{tag}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        Self::child_of(&cgroup2_mount(), &name)
    }

    /// A cgroup named `name` under `parent`.
    pub fn child_of(parent: &Path, name: &str) -> TestCgroup {
        let path = parent.join(name);
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TestCgroup { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        remove(&self.path);
    }
}

/// Kills what runs in `cgroup` and its children and removes them, deepest
/// first. Bounded: a killed process leaves the cgroup once reaped.
pub fn remove(cgroup: &Path) {
    if !cgroup.exists() {
        return;
    }
    if let Ok(children) = std::fs::read_dir(cgroup) {
        for child in children.flatten().filter(|c| c.path().is_dir()) {
            remove(&child.path());
        }
    }
    let _ = std::fs::write(cgroup.join("cgroup.kill"), "1");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match std::fs::remove_dir(cgroup) {
            Ok(()) => return,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                eprintln!("WARNING: cannot remove test cgroup {}: {e}", cgroup.display());
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_test_cgroup_takes_its_processes_and_child_cgroups_with_it() {
        // SAFETY: no arguments, cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let cg = TestCgroup::create("drop");
        let child = TestCgroup::child_of(cg.path(), "docker-c0ffee.scope");
        let mut sleeper = std::process::Command::new("sh")
            .args(["-c", "echo $$ > \"$0/cgroup.procs\" && exec sleep 600"])
            .arg(child.path())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::read_to_string(child.path().join("cgroup.procs"))
            .unwrap_or_default()
            .is_empty()
        {
            assert!(Instant::now() < deadline, "the sleeper never joined");
            std::thread::sleep(Duration::from_millis(10));
        }
        let (parent, inner) = (cg.path().to_path_buf(), child.path().to_path_buf());
        std::mem::forget(child); // as when a test panics before its container is dropped
        drop(cg);
        assert!(!inner.exists() && !parent.exists());
        assert!(sleeper.wait().unwrap().code().is_none(), "killed, not left running");
    }
}
