//! Per-SNI leaf certificates, minted on demand from the org CA and cached.
//!
//! Leaves are ECDSA P-256 with SAN = the SNI, SKI, AKI (Python 3.13's
//! `VERIFY_X509_STRICT` rejects leaves without it), EKU serverAuth, and a short
//! lifetime backdated by an hour for client clock skew. A cached leaf is
//! re-minted once less than a third of its lifetime remains, so clients never
//! see one close to expiry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

use crate::constraints::{normalize_dns_name, DnsConstraints};
use crate::org::{random_serial, rfc3339, OrgCa};
use crate::CaError;

/// Source of "now"; injectable so rotation can be tested without waiting.
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// Leaves start this far in the past, for clients whose clock runs behind.
const BACKDATE: Duration = Duration::hours(1);
/// Bound on cached leaves; only reached if something mints for many names.
const MAX_CACHED: usize = 4096;

struct CachedLeaf {
    key: Arc<CertifiedKey>,
    remint_at: OffsetDateTime,
}

pub struct LeafMinter {
    issuer: Issuer<'static, KeyPair>,
    served_chain: Vec<CertificateDer<'static>>,
    ca_cert: CertificateDer<'static>,
    ca_not_after: OffsetDateTime,
    constraints: Vec<DnsConstraints>,
    validity: Duration,
    provider: Arc<CryptoProvider>,
    clock: Clock,
    cache: Mutex<HashMap<String, CachedLeaf>>,
}

impl std::fmt::Debug for LeafMinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeafMinter")
            .field("validity", &self.validity)
            .field("constraints", &self.constraints)
            .field("cached", &self.cached_count())
            .finish_non_exhaustive()
    }
}

impl LeafMinter {
    /// A minter for `ca` whose leaves live `validity` (e.g. `[ca] leaf_validity_hours`).
    pub fn new(ca: &OrgCa, validity: std::time::Duration) -> Result<Arc<Self>, CaError> {
        Self::with_clock(ca, validity, Arc::new(OffsetDateTime::now_utc))
    }

    pub fn with_clock(ca: &OrgCa, validity: std::time::Duration, clock: Clock) -> Result<Arc<Self>, CaError> {
        let validity = Duration::try_from(validity)
            .unwrap_or(Duration::days(1))
            .max(Duration::seconds(1));
        let now = clock();
        if now < ca.not_before() || now > ca.not_after() {
            return Err(CaError::NotCurrentlyValid {
                subject: ca.subject(),
                not_before: rfc3339(ca.not_before()),
                not_after: rfc3339(ca.not_after()),
            });
        }
        Ok(Arc::new(LeafMinter {
            issuer: ca.issuer()?,
            served_chain: ca.served_chain(),
            ca_cert: ca.cert_der().clone(),
            ca_not_after: ca.not_after(),
            constraints: ca.dns_constraints(),
            validity,
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            clock,
            cache: Mutex::new(HashMap::new()),
        }))
    }

    /// The issuing CA certificate leaves chain to.
    pub fn ca_cert_der(&self) -> &CertificateDer<'static> {
        &self.ca_cert
    }

    /// Checks that `sni` is a DNS name the CA may vouch for; returns it normalized.
    pub fn check_name(&self, sni: &str) -> Result<String, CaError> {
        let name = normalize_dns_name(sni);
        if rustls_pki_types::DnsName::try_from(name.as_str()).is_err() || name.parse::<std::net::IpAddr>().is_ok() {
            return Err(CaError::InvalidName { name: sni.to_string() });
        }
        if let Some(c) = self.constraints.iter().find(|c| !c.allows(&name)) {
            let mut permitted = c.permitted.join(", ");
            if !c.excluded.is_empty() {
                permitted.push_str(&format!(" (excluding {})", c.excluded.join(", ")));
            }
            return Err(CaError::NameNotPermitted { name, permitted });
        }
        Ok(name)
    }

    /// Whether a leaf can be minted for `sni`.
    pub fn is_permitted(&self, sni: &str) -> bool {
        self.check_name(sni).is_ok()
    }

    /// The cached leaf for `sni`, minting a new one if absent or due for rotation.
    pub fn certified_key(&self, sni: &str) -> Result<Arc<CertifiedKey>, CaError> {
        let name = self.check_name(sni)?;
        let now = (self.clock)();
        if let Some(leaf) = self.cache.lock().expect("leaf cache lock").get(&name) {
            if now < leaf.remint_at {
                return Ok(leaf.key.clone());
            }
        }
        // Minted outside the lock: a rare duplicate mint is cheaper than
        // stalling every handshake behind one signature.
        let leaf = self.mint(&name, now)?;
        let key = leaf.key.clone();
        let mut cache = self.cache.lock().expect("leaf cache lock");
        if cache.len() >= MAX_CACHED {
            cache.retain(|_, l| now < l.remint_at);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        cache.insert(name, leaf);
        Ok(key)
    }

    /// Number of leaves in the cache.
    pub fn cached_count(&self) -> usize {
        self.cache.lock().map(|c| c.len()).unwrap_or(0)
    }

    fn mint(&self, name: &str, now: OffsetDateTime) -> Result<CachedLeaf, CaError> {
        if now > self.ca_not_after {
            return Err(CaError::NotCurrentlyValid {
                subject: "the org CA".into(),
                not_before: String::new(),
                not_after: rfc3339(self.ca_not_after),
            });
        }
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.subject_alt_names = vec![SanType::DnsName(name.try_into()?)];
        params.serial_number = Some(random_serial());
        params.not_before = now - BACKDATE;
        // Never outlive the CA: clients reject such leaves.
        params.not_after = (now + self.validity).min(self.ca_not_after);
        // ExplicitNoCa writes BasicConstraints CA:FALSE and, with it, the SKI.
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer)?;

        let signing_key = self
            .provider
            .key_provider
            .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())))?;
        let mut chain = Vec::with_capacity(1 + self.served_chain.len());
        chain.push(cert.der().clone());
        chain.extend(self.served_chain.iter().cloned());
        let lifetime = params.not_after - now;
        tracing::debug!(sni = name, not_after = %rfc3339(params.not_after), "minted leaf");
        Ok(CachedLeaf {
            key: Arc::new(CertifiedKey::new(chain, signing_key)),
            remint_at: now + lifetime * 2 / 3,
        })
    }

    /// A rustls server config that presents minted leaves by SNI and offers `alpn`.
    pub fn server_config(self: &Arc<Self>, alpn: &[&[u8]]) -> Arc<rustls::ServerConfig> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default TLS versions")
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

impl ResolvesServerCert for LeafMinter {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let Some(sni) = hello.server_name() else {
            tracing::debug!("TLS client sent no SNI; no certificate to present");
            return None;
        };
        match self.certified_key(sni) {
            Ok(key) => Some(key),
            Err(e) => {
                tracing::warn!(sni, "not presenting a certificate: {e}");
                None
            }
        }
    }
}
