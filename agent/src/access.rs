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

/// Uids of the group's members: those listed in /etc/group and those
/// whose primary group it is (/etc/passwd).
pub fn group_member_uids(name: &str) -> Vec<u32> {
    let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    members_in(&groups, &passwd, name)
}

fn members_in(groups: &str, passwd: &str, name: &str) -> Vec<u32> {
    let Some((gid, listed)) = groups.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 4 && f[0] == name).then(|| (f[2].parse::<u32>().ok(), f[3].to_string()))
    }) else {
        return Vec::new();
    };
    let listed: Vec<&str> = listed.split(',').map(str::trim).filter(|n| !n.is_empty()).collect();
    let mut uids: Vec<u32> = passwd
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            let uid = f[2].parse::<u32>().ok()?;
            let primary = gid.is_some() && f[3].parse::<u32>().ok() == gid;
            (primary || listed.contains(&f[0])).then_some(uid)
        })
        .collect();
    uids.sort_unstable();
    uids.dedup();
    uids
}

#[cfg(test)]
mod tests {
    use super::members_in;

    #[test]
    fn group_members_are_the_listed_users_and_those_whose_primary_group_it_is() {
        let groups = "root:x:0:\npromptwall:x:990:alice,bob\nstaff:x:50:carol\n";
        let passwd = "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n\
                      bob:x:1001:1001::/home/bob:/bin/sh\ncarol:x:1002:1002::/home/carol:/bin/sh\n\
                      svc:x:989:990::/:/usr/sbin/nologin\n";
        assert_eq!(members_in(groups, passwd, "promptwall"), vec![989, 1000, 1001]);
        assert_eq!(members_in(groups, passwd, "nosuch"), Vec::<u32>::new());
    }
}
