//! nftables rules in a dedicated `inet promptwall` table: the QUIC block (when
//! eBPF is not doing it) and the fallback redirect mode (`redirect to :port`,
//! guarded by the proxy's socket mark so its upstream connections never loop).
//!
//! Rules are generated as data from config (`ruleset`), checked against the
//! `nftables` crate's schema, and covered by golden files in `tests/golden/`.

use std::net::IpAddr;

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

fn element(p: &Prefix) -> Value {
    let addr = match p.addr {
        IpAddr::V4(_) | IpAddr::V6(_) => {
            let octets = p.masked_octets();
            match octets.len() {
                4 => IpAddr::from(<[u8; 4]>::try_from(octets.as_slice()).unwrap()).to_string(),
                _ => IpAddr::from(<[u8; 16]>::try_from(octets.as_slice()).unwrap()).to_string(),
            }
        }
    };
    let full = if p.addr.is_ipv4() { 32 } else { 128 };
    if p.len == full {
        json!(addr)
    } else {
        json!({"prefix": {"addr": addr, "len": p.len}})
    }
}

fn add(kind: &str, body: Value) -> Value {
    json!({"add": {kind: body}})
}

fn base(extra: Value) -> Value {
    let mut v = json!({"family": FAMILY, "table": TABLE});
    v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    v
}

/// The whole table as an nftables JSON document (commands, no table reset).
pub fn ruleset(settings: &NftSettings) -> Value {
    let prefixes = normalise(&settings.prefixes);
    let (v4, v6): (Vec<&Prefix>, Vec<&Prefix>) = prefixes.iter().partition(|p| p.addr.is_ipv4());
    let ports = json!({"set": settings.ports.clone()});
    let mut cmds = vec![
        add("table", json!({"family": FAMILY, "name": TABLE})),
        add(
            "set",
            base(json!({"name": SET_V4, "type": "ipv4_addr", "flags": ["interval"]})),
        ),
        add(
            "set",
            base(json!({"name": SET_V6, "type": "ipv6_addr", "flags": ["interval"]})),
        ),
    ];
    for (set, items) in [(SET_V4, &v4), (SET_V6, &v6)] {
        if !items.is_empty() {
            let elems: Vec<Value> = items.iter().map(|p| element(p)).collect();
            cmds.push(add("element", base(json!({"name": set, "elem": elems}))));
        }
    }
    let daddr = |proto: &str, set: &str| json!({"match": {"op": "==", "left": {"payload": {"protocol": proto, "field": "daddr"}}, "right": format!("@{set}")}});
    let dport = |proto: &str| json!({"match": {"op": "==", "left": {"payload": {"protocol": proto, "field": "dport"}}, "right": ports.clone()}});
    if settings.block_quic {
        cmds.push(add(
            "chain",
            base(json!({"name": "quic", "type": "filter", "hook": "output", "prio": 0, "policy": "accept"})),
        ));
        for (proto, set) in [("ip", SET_V4), ("ip6", SET_V6)] {
            cmds.push(add(
                "rule",
                base(json!({"chain": "quic", "expr": [
                    daddr(proto, set),
                    dport("udp"),
                    {"reject": {"type": "icmpx", "expr": "admin-prohibited"}}
                ]})),
            ));
        }
    }
    if settings.redirect_port_v4.is_some() || settings.redirect_port_v6.is_some() {
        cmds.push(add(
            "chain",
            base(json!({"name": "redirect", "type": "nat", "hook": "output", "prio": -100, "policy": "accept"})),
        ));
        for (proto, set, port) in [
            ("ip", SET_V4, settings.redirect_port_v4),
            ("ip6", SET_V6, settings.redirect_port_v6),
        ] {
            let Some(port) = port else { continue };
            cmds.push(add(
                "rule",
                base(json!({"chain": "redirect", "expr": [
                    {"match": {"op": "!=", "left": {"meta": {"key": "mark"}}, "right": settings.mark}},
                    daddr(proto, set),
                    dport("tcp"),
                    {"redirect": {"port": port}}
                ]})),
            ));
        }
    }
    json!({"nftables": cmds})
}

/// Parses the document through the crate's schema (catches malformed rules without root).
pub fn typed(document: &Value) -> anyhow::Result<Nftables<'static>> {
    serde_json::from_value(document.clone())
        .context("generated nftables ruleset does not match the nftables JSON schema")
}

/// Installs the table, replacing any previous copy atomically (one nft batch).
pub fn apply(settings: &NftSettings) -> anyhow::Result<()> {
    let mut doc = ruleset(settings);
    let cmds = doc["nftables"].as_array_mut().unwrap();
    // add + delete + add: idempotent replace even when the table is absent.
    cmds.insert(0, json!({"delete": {"table": {"family": FAMILY, "name": TABLE}}}));
    cmds.insert(0, json!({"add": {"table": {"family": FAMILY, "name": TABLE}}}));
    let typed = typed(&doc)?;
    nftables::helper::apply_ruleset(&typed)
        .context("nft rejected the promptwall ruleset; is this root with nftables (nft) installed?")
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
        let doc = ruleset(settings);
        // Round-trip through the typed schema: the golden file is what nft receives.
        let typed = typed(&doc).unwrap();
        let text = serde_json::to_string_pretty(&typed).unwrap() + "\n";
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
            "nft_quic_only.json",
            &NftSettings {
                redirect_port_v4: None,
                redirect_port_v6: None,
                block_quic: true,
                mark: 0x1fa1,
                ports: vec![443],
                prefixes: prefixes(&["160.79.104.0/23", "2607:6bc0::/48"]),
            },
        );
    }

    #[test]
    fn fallback_redirect_with_quic_block() {
        check(
            "nft_redirect.json",
            &NftSettings {
                redirect_port_v4: Some(15443),
                redirect_port_v6: Some(15443),
                block_quic: true,
                mark: 0x1fa1,
                ports: vec![443, 8443],
                prefixes: prefixes(&["160.79.104.0/23", "160.79.104.9", "127.0.0.2", "2607:6bc0::/48"]),
            },
        );
    }

    #[test]
    fn redirect_without_addresses_has_empty_sets() {
        check(
            "nft_redirect_empty.json",
            &NftSettings {
                redirect_port_v4: Some(15443),
                redirect_port_v6: None,
                block_quic: false,
                mark: 7,
                ports: vec![443],
                prefixes: vec![],
            },
        );
    }
}
