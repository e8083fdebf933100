//! The provider address set: static ranges from config, addresses the resolver
//! saw (kept for a while after they leave DNS, to absorb CDN churn) and test
//! overrides. Pure bookkeeping; `ebpf.rs`/`nft.rs` turn it into map entries.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// An address prefix such as 160.79.104.0/23 or 2607:6bc0::/48.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl Prefix {
    pub fn host(addr: IpAddr) -> Self {
        let addr = canonical(addr);
        Prefix {
            addr,
            len: if addr.is_ipv4() { 32 } else { 128 },
        }
    }

    /// Address bytes in network order with host bits cleared.
    pub fn masked_octets(&self) -> Vec<u8> {
        let mut bytes = match self.addr {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        for (i, b) in bytes.iter_mut().enumerate() {
            let bit_start = i * 8;
            let keep = (self.len as usize).saturating_sub(bit_start).min(8);
            *b &= if keep == 0 { 0 } else { 0xffu8 << (8 - keep) };
        }
        bytes
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        Prefix {
            addr: ip,
            len: self.len,
        }
        .masked_octets()
            == self.masked_octets()
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl std::str::FromStr for Prefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| {
            format!("{s:?} is not an IP address or prefix; write e.g. 160.79.104.0/23 or 2607:6bc0::/48")
        })?;
        let addr = canonical(addr);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("{s:?} has an invalid prefix length; it must be 0..={max}"))?,
            None => max,
        };
        Ok(Prefix { addr, len })
    }
}

/// v4-mapped IPv6 addresses are treated as the IPv4 address they carry.
pub fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(addr),
        v4 => v4,
    }
}

pub fn parse_prefixes<'a>(items: impl IntoIterator<Item = &'a String>) -> anyhow::Result<Vec<Prefix>> {
    items
        .into_iter()
        .map(|s| {
            s.parse::<Prefix>()
                .map_err(|e| anyhow::anyhow!("intercept.addresses: {e}"))
        })
        .collect()
}

/// Where an entry came from; the value stored in the eBPF tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Source {
    Static = 1,
    Resolved = 2,
    Override = 3,
}

/// The desired set; `diff` tells what to add to and remove from the maps.
#[derive(Debug, Default)]
pub struct AddressSet {
    fixed: BTreeMap<Prefix, Source>,
    resolved: BTreeMap<Prefix, Instant>,
}

impl AddressSet {
    pub fn with_static(prefixes: &[Prefix]) -> Self {
        let mut set = AddressSet::default();
        for p in prefixes {
            set.fixed.insert(*p, Source::Static);
        }
        set
    }

    pub fn add_override(&mut self, prefix: Prefix) -> bool {
        self.fixed.insert(prefix, Source::Override).is_none()
    }

    /// Records that DNS returned `addr` now; returns true when it is new.
    pub fn saw_resolved(&mut self, addr: IpAddr, now: Instant) -> bool {
        self.resolved.insert(Prefix::host(addr), now).is_none()
    }

    /// Forgets resolved addresses not seen for `keep`; returns those removed
    /// that are not also covered by a fixed entry.
    pub fn expire(&mut self, now: Instant, keep: Duration) -> Vec<Prefix> {
        let stale: Vec<Prefix> = self
            .resolved
            .iter()
            .filter(|(_, seen)| now.saturating_duration_since(**seen) > keep)
            .map(|(p, _)| *p)
            .collect();
        for p in &stale {
            self.resolved.remove(p);
        }
        stale.into_iter().filter(|p| !self.fixed.contains_key(p)).collect()
    }

    /// Every prefix with its source (fixed entries win over resolved ones).
    pub fn entries(&self) -> Vec<(Prefix, Source)> {
        let mut all: BTreeMap<Prefix, Source> = self.resolved.keys().map(|p| (*p, Source::Resolved)).collect();
        all.extend(self.fixed.iter().map(|(p, s)| (*p, *s)));
        all.into_iter().collect()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prefixes_and_hosts() {
        let p: Prefix = "160.79.104.0/23".parse().unwrap();
        assert_eq!(p.len, 23);
        assert!(p.contains("160.79.105.7".parse().unwrap()));
        assert!(!p.contains("160.79.106.1".parse().unwrap()));
        let h: Prefix = "127.0.0.2".parse().unwrap();
        assert_eq!(h.len, 32);
        let v6: Prefix = "2607:6bc0::/48".parse().unwrap();
        assert!(v6.contains("2607:6bc0:0:1::5".parse().unwrap()));
        let mapped: Prefix = "::ffff:127.0.0.3".parse().unwrap();
        assert_eq!(mapped, "127.0.0.3/32".parse().unwrap());
    }

    #[test]
    fn rejects_bad_input_with_a_hint() {
        assert!("1.2.3.4/33".parse::<Prefix>().unwrap_err().contains("0..=32"));
        assert!("api.anthropic.com".parse::<Prefix>().unwrap_err().contains("e.g."));
    }

    #[test]
    fn masks_host_bits() {
        let p: Prefix = "160.79.105.9/23".parse().unwrap();
        assert_eq!(p.masked_octets(), vec![160, 79, 104, 0]);
    }

    #[test]
    fn resolved_addresses_expire_but_static_ones_stay() {
        let t0 = Instant::now();
        let mut set = AddressSet::with_static(&["127.0.0.9/32".parse().unwrap()]);
        assert!(set.saw_resolved("127.0.0.2".parse().unwrap(), t0));
        assert!(!set.saw_resolved("127.0.0.2".parse().unwrap(), t0));
        assert!(set.saw_resolved("127.0.0.9".parse().unwrap(), t0));
        assert_eq!(set.len(), 2);
        let keep = Duration::from_secs(60);
        assert!(set.expire(t0 + Duration::from_secs(30), keep).is_empty());
        let removed = set.expire(t0 + Duration::from_secs(61), keep);
        // 127.0.0.9 is still a static entry, so only .2 leaves the maps.
        assert_eq!(removed, vec!["127.0.0.2/32".parse().unwrap()]);
        assert_eq!(set.entries(), vec![("127.0.0.9/32".parse().unwrap(), Source::Static)]);
    }
}
