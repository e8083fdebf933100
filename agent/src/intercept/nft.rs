//! nftables rules in a dedicated `inet promptwall` table: the QUIC block (when
//! eBPF is not doing it) and the fallback redirect mode (`redirect to :port`,
//! guarded by the proxy's socket mark so its upstream connections never loop),
//! scoped to `[intercept] cgroup` when one is set.
//!
//! The table is rendered from config as one nft script (`script`) and
//! applied in one transaction, covered by golden files in `tests/golden/`.
//! A script rather than nft's JSON: nft 1.0.6 (Debian 12) cannot parse
//! `socket cgroupv2` from JSON. Element updates (`update_elements`) go
//! through the `nftables` crate's typed JSON.

use std::net::IpAddr;
use std::path::Path;

use anyhow::Context;
use nftables::schema::Nftables;
use serde_json::{json, Value};

use super::addresses::Prefix;

pub const TABLE: &str = "promptwall";
pub const FAMILY: &str = "inet";
const SET_V4: &str = "providers_v4";
const SET_V6: &str = "providers_v6";

/// What the generated ruleset depends on.
#[derive(Debug, Clone)]
pub struct NftSettings {
    /// Some(port): redirect captured TCP to this local port (fallback mode).
    pub redirect_port_v4: Option<u16>,
    pub redirect_port_v6: Option<u16>,
    pub block_quic: bool,
    pub mark: u32,
    pub ports: Vec<u16>,
    pub prefixes: Vec<Prefix>,
    /// Only sockets of this cgroup (and its descendants) are blocked and
    /// redirected; None: every process (`[intercept] cgroup` unset).
    pub scope: Option<CgroupScope>,
}

/// `socket cgroupv2 level N "path"`: the socket's cgroup ancestor at depth
/// `level` of the cgroup2 hierarchy is the one at `path`. nft resolves the
/// path against /sys/fs/cgroup whatever the mount, so `path` is relative
/// to that (`unified/promptwall` on a hybrid layout) while `level` counts
/// from the hierarchy's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupScope {
    pub path: String,
    pub level: u32,
}

/// Where nft looks cgroup paths up.
const NFT_CGROUP_BASE: &str = "/sys/fs/cgroup";

/// The scope for interception confined to `cgroup` in the cgroup2
/// hierarchy mounted at `mount`; None when `cgroup` is the root (all).
pub fn scope_for(cgroup: &Path, mount: &Path) -> anyhow::Result<Option<CgroupScope>> {
    let inside = cgroup.strip_prefix(mount).map_err(|_| {
        anyhow::anyhow!(
            "[intercept] cgroup {} is not inside the cgroup2 hierarchy mounted at {}; give a directory under it",
            cgroup.display(),
            mount.display()
        )
    })?;
    let level = inside.components().count() as u32;
    if level == 0 {
        return Ok(None);
    }
    let path = cgroup.strip_prefix(NFT_CGROUP_BASE).map_err(|_| {
        anyhow::anyhow!(
            "[intercept] cgroup {} is not under {NFT_CGROUP_BASE}, where nft looks cgroups up; \
             scope the nftables fallback with a cgroup there, or leave [intercept] cgroup unset",
            cgroup.display()
        )
    })?;
    Ok(Some(CgroupScope {
        path: path.display().to_string(),
        level,
    }))
}

/// Drops prefixes covered by another one: interval sets reject overlaps.
pub fn normalise(prefixes: &[Prefix]) -> Vec<Prefix> {
    let mut sorted: Vec<Prefix> = prefixes.to_vec();
    sorted.sort_by_key(|p| (p.addr.is_ipv6(), p.len));
    let mut kept: Vec<Prefix> = Vec::new();
    for p in sorted {
        if !kept.iter().any(|k| k.len <= p.len && k.contains(p.addr)) {
            kept.push(p);
        }
    }
    kept.sort();
    kept
}

/// A prefix as an nft set element (JSON, for the typed element updates).
fn element(p: &Prefix) -> Value {
    let text = element_text(p);
    match text.split_once('/') {
        Some((addr, len)) => json!({"prefix": {"addr": addr, "len": len.parse::<u8>().expect("a prefix length")}}),
        None => json!(text),
    }
}

/// `160.79.104.0/23`, or a bare address for a full-length prefix.
fn element_text(p: &Prefix) -> String {
    let octets = p.masked_octets();
    let addr = match octets.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(octets.as_slice()).unwrap()),
        _ => IpAddr::from(<[u8; 16]>::try_from(octets.as_slice()).unwrap()),
    };
    let full = if p.addr.is_ipv4() { 32 } else { 128 };
    if p.len == full {
        addr.to_string()
    } else {
        format!("{addr}/{}", p.len)
    }
}

fn base(extra: Value) -> Value {
    let mut v = json!({"family": FAMILY, "table": TABLE});
    v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    v
}

/// Characters a cgroup path may have in the script: it is quoted there,
/// and nothing in it may end the quote.
fn plain_path(path: &str) -> bool {
    !path.is_empty()
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | ':' | '/' | '+' | '='))
}

/// The whole table as one nft script: re-created from scratch (add, delete,
/// add: idempotent even when absent), then sets, elements, chains, rules,
/// all applied in one transaction.
pub fn script(settings: &NftSettings) -> anyhow::Result<String> {
    let prefixes = normalise(&settings.prefixes);
    let (v4, v6): (Vec<&Prefix>, Vec<&Prefix>) = prefixes.iter().partition(|p| p.addr.is_ipv4());
    let t = format!("{FAMILY} {TABLE}");
    let mut out = format!("add table {t}\ndelete table {t}\nadd table {t}\n");
    out.push_str(&format!("add set {t} {SET_V4} {{ type ipv4_addr; flags interval; }}\n"));
    out.push_str(&format!("add set {t} {SET_V6} {{ type ipv6_addr; flags interval; }}\n"));
    for (set, items) in [(SET_V4, &v4), (SET_V6, &v6)] {
        if !items.is_empty() {
            let elems: Vec<String> = items.iter().map(|p| element_text(p)).collect();
            out.push_str(&format!("add element {t} {set} {{ {} }}\n", elems.join(", ")));
        }
    }
    // Leading match of every rule: sockets of the intercepted cgroup only.
    let scope = match &settings.scope {
        Some(scope) if plain_path(&scope.path) => format!("socket cgroupv2 level {} \"{}\" ", scope.level, scope.path),
        Some(scope) => anyhow::bail!(
            "[intercept] cgroup {:?} has characters nft scripts cannot carry; use letters, digits and . _ - @ : / + =",
            scope.path
        ),
        None => String::new(),
    };
    let ports = settings.ports.iter().map(u16::to_string).collect::<Vec<_>>().join(", ");
    if settings.block_quic {
        out.push_str(&format!(
            "add chain {t} quic {{ type filter hook output priority 0; policy accept; }}\n"
        ));
        for (proto, set) in [("ip", SET_V4), ("ip6", SET_V6)] {
            out.push_str(&format!(
                "add rule {t} quic {scope}{proto} daddr @{set} udp dport {{ {ports} }} reject with icmpx admin-prohibited\n"
            ));
        }
    }
    if settings.redirect_port_v4.is_some() || settings.redirect_port_v6.is_some() {
        out.push_str(&format!(
            "add chain {t} capture {{ type nat hook output priority -100; policy accept; }}\n"
        ));
        for (proto, set, port) in [
            ("ip", SET_V4, settings.redirect_port_v4),
            ("ip6", SET_V6, settings.redirect_port_v6),
        ] {
            let Some(port) = port else { continue };
            out.push_str(&format!(
                "add rule {t} capture {scope}meta mark != {:#010x} {proto} daddr @{set} tcp dport {{ {ports} }} redirect to :{port}\n",
                settings.mark
            ));
        }
    }
    Ok(out)
}

/// Parses the document through the crate's schema (catches malformed rules without root).
pub fn typed(document: &Value) -> anyhow::Result<Nftables<'static>> {
    serde_json::from_value(document.clone())
        .context("generated nftables ruleset does not match the nftables JSON schema")
}

/// Installs the table, replacing any previous copy atomically (one nft batch).
pub fn apply(settings: &NftSettings) -> anyhow::Result<()> {
    use std::io::Write;
    let script = script(settings)?;
    let mut child = std::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("cannot run nft; is nftables installed?")?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(script.as_bytes())
        .context("cannot hand nft the promptwall ruleset")?;
    let out = child.wait_with_output().context("nft did not finish")?;
    anyhow::ensure!(
        out.status.success(),
        "nft rejected the promptwall ruleset ({}); is this root with nftables (nft) installed?",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// Adds or removes single addresses at runtime (resolver updates).
pub fn update_elements(add_prefixes: &[Prefix], remove: &[Prefix]) -> anyhow::Result<()> {
    let mut cmds = Vec::new();
    for (verb, list) in [("add", add_prefixes), ("delete", remove)] {
        for p in list {
            let set = if p.addr.is_ipv4() { SET_V4 } else { SET_V6 };
            cmds.push(json!({verb: {"element": base(json!({"name": set, "elem": [element(p)]}))}}));
        }
    }
    if cmds.is_empty() {
        return Ok(());
    }
    let typed = typed(&json!({"nftables": cmds}))?;
    nftables::helper::apply_ruleset(&typed).context("nft refused a provider address update")
}

/// Whether the table exists (needs root and nft).
pub fn table_exists() -> bool {
    std::process::Command::new("nft")
        .args(["list", "table", FAMILY, TABLE])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Deletes the table and everything in it; absent is fine.
pub fn remove_table() -> anyhow::Result<bool> {
    if !table_exists() {
        return Ok(false);
    }
    let doc = json!({"nftables": [{"delete": {"table": {"family": FAMILY, "name": TABLE}}}]});
    nftables::helper::apply_ruleset(&typed(&doc)?)
        .context("cannot delete nftables table inet promptwall; remove it with `nft delete table inet promptwall`")?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_prefixes_collapse() {
        let ps: Vec<Prefix> = [
            "160.79.104.0/23",
            "160.79.104.7",
            "127.0.0.2",
            "2607:6bc0::/48",
            "2607:6bc0::1",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let n = normalise(&ps);
        let shown: Vec<String> = n.iter().map(|p| p.to_string()).collect();
        assert_eq!(shown, ["127.0.0.2/32", "160.79.104.0/23", "2607:6bc0::/48"]);
    }
}

#[cfg(test)]
mod golden {
    use super::*;
    use std::path::PathBuf;

    fn check(name: &str, settings: &NftSettings) {
        let text = script(settings).unwrap();
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(name);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &text).unwrap();
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("missing golden file {}: {e}; run with UPDATE_GOLDEN=1", path.display()));
        assert_eq!(
            text,
            want,
            "ruleset differs from {}; rerun with UPDATE_GOLDEN=1 if intended",
            path.display()
        );
    }

    fn prefixes(items: &[&str]) -> Vec<Prefix> {
        items.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn quic_block_only() {
        check(
            "nft_quic_only.nft",
            &NftSettings {
                redirect_port_v4: None,
                redirect_port_v6: None,
                block_quic: true,
                mark: 0x1fa1,
                ports: vec![443],
                prefixes: prefixes(&["160.79.104.0/23", "2607:6bc0::/48"]),
                scope: None,
            },
        );
    }

    #[test]
    fn fallback_redirect_with_quic_block() {
        check(
            "nft_redirect.nft",
            &NftSettings {
                redirect_port_v4: Some(15443),
                redirect_port_v6: Some(15443),
                block_quic: true,
                mark: 0x1fa1,
                ports: vec![443, 8443],
                prefixes: prefixes(&["160.79.104.0/23", "160.79.104.9", "127.0.0.2", "2607:6bc0::/48"]),
                scope: None,
            },
        );
    }

    #[test]
    fn redirect_without_addresses_has_empty_sets() {
        check(
            "nft_redirect_empty.nft",
            &NftSettings {
                redirect_port_v4: Some(15443),
                redirect_port_v6: None,
                block_quic: false,
                mark: 7,
                ports: vec![443],
                prefixes: vec![],
                scope: None,
            },
        );
    }

    #[test]
    fn a_configured_cgroup_scopes_every_rule_to_its_sockets() {
        check(
            "nft_redirect_scoped.nft",
            &NftSettings {
                redirect_port_v4: Some(15443),
                redirect_port_v6: Some(15443),
                block_quic: true,
                mark: 0x1fa1,
                ports: vec![443],
                prefixes: prefixes(&["160.79.104.0/23", "2607:6bc0::/48"]),
                scope: Some(CgroupScope {
                    path: "unified/agents.slice/dev".into(),
                    level: 2,
                }),
            },
        );
    }

    #[test]
    fn the_scope_counts_levels_from_the_mount_and_names_the_path_from_where_nft_looks() {
        let hybrid = Path::new("/sys/fs/cgroup/unified");
        assert_eq!(scope_for(hybrid, hybrid).unwrap(), None, "the root scopes nothing");
        assert_eq!(
            scope_for(Path::new("/sys/fs/cgroup/unified/agents.slice/dev"), hybrid).unwrap(),
            Some(CgroupScope {
                path: "unified/agents.slice/dev".into(),
                level: 2
            })
        );
        let unified = Path::new("/sys/fs/cgroup");
        assert_eq!(
            scope_for(Path::new("/sys/fs/cgroup/user.slice"), unified).unwrap(),
            Some(CgroupScope {
                path: "user.slice".into(),
                level: 1
            })
        );
        let err = scope_for(Path::new("/tmp/elsewhere"), unified).unwrap_err().to_string();
        assert!(err.contains("not inside the cgroup2 hierarchy"), "{err}");
        let err = scope_for(Path::new("/mnt/cg2/x"), Path::new("/mnt/cg2"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("where nft looks cgroups up"), "{err}");
    }

    #[test]
    fn a_cgroup_path_that_could_end_its_quote_is_refused() {
        let err = script(&NftSettings {
            redirect_port_v4: Some(15443),
            redirect_port_v6: None,
            block_quic: false,
            mark: 1,
            ports: vec![443],
            prefixes: vec![],
            scope: Some(CgroupScope {
                path: "x\"; flush ruleset; \"".into(),
                level: 1,
            }),
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("characters nft scripts cannot carry"), "{err}");
    }
}
