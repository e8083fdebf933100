//! File access for the local store and sockets: root and the `promptwall` group.

use std::ffi::CString;
use std::path::Path;

/// Gives `path` to the `promptwall` group when that group exists.
pub fn chgrp_promptwall(path: &Path) {
    let Some(gid) = group_id("promptwall") else { return };
    let Ok(c) = CString::new(path.as_os_str().as_encoded_bytes()) else {
        return;
    };
    // SAFETY: c is a valid NUL-terminated path; -1 keeps the owner.
    unsafe {
        libc::chown(c.as_ptr(), u32::MAX, gid);
    }
}

pub fn group_id(name: &str) -> Option<u32> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|line| {
        let mut f = line.split(':');
        (f.next()? == name).then(|| f.nth(1)?.parse().ok())?
    })
}
