//! DNS name constraints: deriving them from provider hosts, reading them from
//! a CA certificate, and checking names against them the way RFC 5280 §4.2.1.10
//! (and OpenSSL/webpki) do, so the minter refuses exactly what clients would reject.

use std::collections::BTreeSet;

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

/// The registrable domains ("last two labels") of provider hosts, sorted and
/// deduplicated: `api.anthropic.com` → `anthropic.com`.
pub fn registrable_domains<'a>(hosts: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out = BTreeSet::new();
    for host in hosts {
        let host = normalize_dns_name(host);
        let labels: Vec<&str> = host.split('.').filter(|l| !l.is_empty()).collect();
        let n = labels.len();
        if n >= 2 {
            out.insert(format!("{}.{}", labels[n - 2], labels[n - 1]));
        } else if n == 1 {
            out.insert(labels[0].to_string());
        }
    }
    out.into_iter().collect()
}

/// Lower-case, without a trailing dot: the form names are compared in.
pub fn normalize_dns_name(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// dNSName subtrees of one certificate's NameConstraints extension, plus its
/// excluded iPAddress ranges (shown by `ca status`; the minter never mints IPs).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DnsConstraints {
    pub permitted: Vec<String>,
    pub excluded: Vec<String>,
    /// Excluded iPAddress subtrees in CIDR form, e.g. "0.0.0.0/0".
    pub excluded_ip: Vec<String>,
}

impl DnsConstraints {
    /// Reads the constraints of `cert`; `None` when it has no dNSName subtrees
    /// and no excluded iPAddress ranges.
    pub fn from_cert(cert: &X509Certificate<'_>) -> Option<DnsConstraints> {
        let ext = cert.name_constraints().ok().flatten()?;
        let dns = |subtrees: &Option<Vec<x509_parser::extensions::GeneralSubtree<'_>>>| -> Vec<String> {
            subtrees
                .iter()
                .flatten()
                .filter_map(|s| match s.base {
                    GeneralName::DNSName(d) => Some(normalize_dns_name(d)),
                    _ => None,
                })
                .collect()
        };
        let excluded_ip = ext
            .value
            .excluded_subtrees
            .iter()
            .flatten()
            .filter_map(|s| match s.base {
                GeneralName::IPAddress(b) => Some(cidr_text(b)),
                _ => None,
            })
            .collect();
        let c = DnsConstraints {
            permitted: dns(&ext.value.permitted_subtrees),
            excluded: dns(&ext.value.excluded_subtrees),
            excluded_ip,
        };
        (!c.permitted.is_empty() || !c.excluded.is_empty() || !c.excluded_ip.is_empty()).then_some(c)
    }

    /// Whether `name` (normalized) satisfies these constraints.
    pub fn allows(&self, name: &str) -> bool {
        if self.excluded.iter().any(|c| within_subtree(name, c)) {
            return false;
        }
        self.permitted.is_empty() || self.permitted.iter().any(|c| within_subtree(name, c))
    }
}

/// An iPAddress subtree (address then mask, 8 or 32 bytes) as "addr/prefix".
fn cidr_text(b: &[u8]) -> String {
    let prefix = |mask: &[u8]| mask.iter().map(|m| m.count_ones()).sum::<u32>();
    match b.len() {
        8 => {
            let addr: [u8; 4] = b[..4].try_into().expect("4 bytes");
            format!("{}/{}", std::net::Ipv4Addr::from(addr), prefix(&b[4..]))
        }
        32 => {
            let addr: [u8; 16] = b[..16].try_into().expect("16 bytes");
            format!("{}/{}", std::net::Ipv6Addr::from(addr), prefix(&b[16..]))
        }
        _ => format!("(malformed iPAddress subtree of {} bytes)", b.len()),
    }
}

/// RFC 5280: `example.com` covers itself and every subdomain; a leading dot
/// (`.example.com`, a common extension) covers only subdomains.
fn within_subtree(name: &str, constraint: &str) -> bool {
    if constraint.is_empty() {
        return true;
    }
    if let Some(suffix) = constraint.strip_prefix('.') {
        return name.len() > suffix.len() + 1 && name.ends_with(constraint);
    }
    name == constraint
        || (name.len() > constraint.len()
            && name.ends_with(constraint)
            && name.as_bytes()[name.len() - constraint.len() - 1] == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrable_domains_take_last_two_labels() {
        let d = registrable_domains([
            "api.anthropic.com",
            "api.openai.com",
            "chatgpt.com",
            "ab.chatgpt.com.",
            "API.OpenAI.com",
        ]);
        assert_eq!(d, vec!["anthropic.com", "chatgpt.com", "openai.com"]);
    }

    #[test]
    fn subtree_matching_follows_rfc5280() {
        let c = DnsConstraints {
            permitted: vec!["anthropic.com".into(), ".openai.com".into()],
            excluded: vec!["evil.anthropic.com".into()],
            ..Default::default()
        };
        assert!(c.allows("anthropic.com"));
        assert!(c.allows("api.anthropic.com"));
        assert!(!c.allows("notanthropic.com"));
        assert!(!c.allows("anthropic.com.evil.net"));
        assert!(c.allows("api.openai.com"));
        assert!(
            !c.allows("openai.com"),
            "leading-dot constraint excludes the domain itself"
        );
        assert!(!c.allows("evil.anthropic.com"));
        assert!(!c.allows("x.evil.anthropic.com"));
        assert!(!c.allows("example.com"));
    }
}
