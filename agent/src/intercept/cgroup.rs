//! Finding the cgroup2 hierarchy and cgroup ids.
//!
//! Hosts differ: unified layout mounts cgroup2 at /sys/fs/cgroup, hybrid
//! layouts at /sys/fs/cgroup/unified; so the mount is read from mountinfo.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// The mount point of the cgroup2 hierarchy, from `/proc/self/mountinfo`.
pub fn cgroup2_mount() -> anyhow::Result<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").context("cannot read /proc/self/mountinfo")?;
    parse_cgroup2_mount(&text).ok_or_else(|| {
        anyhow::anyhow!(
            "no cgroup2 filesystem is mounted; mount one (mount -t cgroup2 none /sys/fs/cgroup/unified) \
             or use intercept.mode = \"nftables\""
        )
    })
}

/// Mountinfo fields: id parent major:minor root mountpoint opts [optional...] - fstype source superopts.
pub fn parse_cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let fstype = right.split_whitespace().next()?;
        if fstype != "cgroup2" {
            return None;
        }
        let mut fields = left.split_whitespace();
        let root = fields.nth(3)?;
        let mount_point = fields.next()?;
        // A bind mount of a sub-cgroup is not the hierarchy root.
        (root == "/").then(|| PathBuf::from(unescape_mountinfo(mount_point)))
    })
}

fn unescape_mountinfo(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// The cgroup id the kernel reports (`bpf_get_current_cgroup_id`) is the
/// inode number of the cgroup2 directory.
pub fn cgroup_id(dir: &Path) -> anyhow::Result<u64> {
    let meta = std::fs::metadata(dir).with_context(|| format!("cannot stat cgroup directory {}", dir.display()))?;
    Ok(meta.ino())
}

/// The cgroup2 path of this process relative to the hierarchy root ("/" at the root).
pub fn own_cgroup_path() -> anyhow::Result<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").context("cannot read /proc/self/cgroup")?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("this process has no cgroup2 membership (no 0:: line in /proc/self/cgroup)"))
}

/// The agent's own cgroup id, or 0 when it sits at the hierarchy root: excluding
/// the root cgroup would exclude every process that sits there too.
pub fn agent_cgroup_id(mount: &Path) -> anyhow::Result<u64> {
    let path = own_cgroup_path()?;
    if path == "/" {
        return Ok(0);
    }
    cgroup_id(&mount.join(path.trim_start_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_hybrid_and_unified_mounts() {
        let hybrid = "24 23 0:21 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n\
                      25 24 0:22 / /sys/fs/cgroup/unified rw,nosuid shared:5 - cgroup2 cgroup2 rw\n\
                      26 24 0:23 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        assert_eq!(
            parse_cgroup2_mount(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let unified =
            "30 1 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(parse_cgroup2_mount(unified), Some(PathBuf::from("/sys/fs/cgroup")));
        assert_eq!(parse_cgroup2_mount("26 24 0:23 / /x rw - cgroup cgroup rw\n"), None);
    }

    #[test]
    fn ignores_bind_mounted_sub_cgroups() {
        let text = "40 1 0:26 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(parse_cgroup2_mount(text), None);
    }
}
