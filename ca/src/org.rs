//! The org CA: create (`init`), bring your own (`import`), load, and describe.
//!
//! On disk, in the CA directory (0700): `ca.pem` holds the issuing CA
//! certificate followed by the rest of its chain (if imported), and `ca.key`
//! (0600) its PKCS#8 private key. `ca.pem` is written last, so its presence
//! means the CA is complete.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType, GeneralSubtree, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, NameConstraints, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::constraints::{normalize_dns_name, DnsConstraints};
use crate::files::{ensure_private_dir, read_to_string, write_atomic};
use crate::trust::{self, TrustStatus};
use crate::{keys, pem, CaError};

pub const CERT_FILE: &str = "ca.pem";
pub const KEY_FILE: &str = "ca.key";

/// How `promptwall ca init` builds the org root.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// DNS subtrees the root may vouch for (registrable provider domains).
    pub permitted_domains: Vec<String>,
    /// Add the NameConstraints extension (strongly recommended: a stolen key
    /// then cannot mint certificates for anything but the providers).
    pub name_constraints: bool,
    pub common_name: String,
    pub validity_days: u32,
    /// Replace an existing CA in the directory.
    pub force: bool,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            permitted_domains: Vec::new(),
            name_constraints: true,
            common_name: default_common_name(),
            validity_days: 3650,
            force: false,
        }
    }
}

/// `promptwall org CA (<hostname>)`: says whose CA it is in any trust store listing.
pub fn default_common_name() -> String {
    let host = fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    if host.is_empty() {
        "promptwall org CA".to_string()
    } else {
        format!("promptwall org CA ({host})")
    }
}

/// A loaded org CA: the signing key and the issuing certificate with its chain.
pub struct OrgCa {
    dir: PathBuf,
    key: KeyPair,
    /// `[0]` is the issuing certificate (matches `key`), then the rest of the chain.
    chain: Vec<CertificateDer<'static>>,
}

impl std::fmt::Debug for OrgCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrgCa")
            .field("dir", &self.dir)
            .field("subject", &self.subject())
            .finish_non_exhaustive()
    }
}

impl OrgCa {
    pub fn cert_path(dir: &Path) -> PathBuf {
        dir.join(CERT_FILE)
    }

    pub fn key_path(dir: &Path) -> PathBuf {
        dir.join(KEY_FILE)
    }

    /// Whether `dir` holds a (complete or partial) CA.
    pub fn exists(dir: &Path) -> bool {
        Self::cert_path(dir).exists() || Self::key_path(dir).exists()
    }

    /// Creates a new org root in `dir`.
    pub fn init(dir: &Path, opts: &InitOptions) -> Result<OrgCa, CaError> {
        if Self::exists(dir) && !opts.force {
            return Err(CaError::AlreadyExists { dir: dir.to_path_buf() });
        }
        let mut domains: Vec<String> = opts
            .permitted_domains
            .iter()
            .map(|d| normalize_dns_name(d))
            .filter(|d| !d.is_empty())
            .collect();
        domains.sort();
        domains.dedup();
        if opts.name_constraints && domains.is_empty() {
            return Err(CaError::NoPermittedDomains);
        }
        for d in &domains {
            rustls_pki_types::DnsName::try_from(d.as_str()).map_err(|_| CaError::InvalidName { name: d.clone() })?;
        }

        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "promptwall");
        dn.push(DnType::CommonName, opts.common_name.as_str());
        params.distinguished_name = dn;
        params.serial_number = Some(random_serial());
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(i64::from(opts.validity_days.max(1)));
        // Path length 0: this root signs leaves only, never further CAs.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.use_authority_key_identifier_extension = true;
        if opts.name_constraints {
            params.name_constraints = Some(NameConstraints {
                permitted_subtrees: domains.iter().map(|d| GeneralSubtree::DnsName(d.clone())).collect(),
                // dNSName subtrees say nothing about iPAddress names: without
                // this a stolen key could still vouch for any IP address.
                excluded_subtrees: vec![
                    GeneralSubtree::IpAddress(CidrSubnet::V4([0; 4], [0; 4])),
                    GeneralSubtree::IpAddress(CidrSubnet::V6([0; 16], [0; 16])),
                ],
            });
        }
        let cert = params.self_signed(&key)?;

        let ca = OrgCa {
            dir: dir.to_path_buf(),
            key,
            chain: vec![cert.der().clone()],
        };
        ca.write()?;
        tracing::info!(dir = %dir.display(), subject = %ca.subject(), "created org CA");
        Ok(ca)
    }

    /// Adopts an existing org CA or intermediate. `cert_path` may hold the
    /// certificate followed by its chain; leaves are then served with that chain.
    pub fn import(dir: &Path, cert_path: &Path, key_path: &Path, force: bool) -> Result<OrgCa, CaError> {
        if Self::exists(dir) && !force {
            return Err(CaError::AlreadyExists { dir: dir.to_path_buf() });
        }
        let certs = pem::parse_certs(&read_to_string(cert_path, "read the certificate file")?, cert_path)?;
        let key = keys::key_pair_from_pem(&read_to_string(key_path, "read the key file")?, key_path)?;
        let issuing = certs
            .iter()
            .position(|c| {
                parse(c)
                    .map(|x| x.public_key().subject_public_key.data.as_ref() == key.public_key_raw())
                    .unwrap_or(false)
            })
            .ok_or_else(|| CaError::KeyMismatch {
                cert: cert_path.to_path_buf(),
                key: key_path.to_path_buf(),
            })?;
        let mut chain = vec![certs[issuing].clone()];
        chain.extend(
            certs
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != issuing)
                .map(|(_, c)| c.clone()),
        );

        let x = parse(&chain[0]).map_err(|reason| CaError::BadCertificate {
            path: cert_path.to_path_buf(),
            reason,
        })?;
        let may_sign = x
            .key_usage()
            .ok()
            .flatten()
            .map(|ku| ku.value.key_cert_sign())
            .unwrap_or(true);
        if !x.is_ca() || !may_sign {
            return Err(CaError::NotCa {
                path: cert_path.to_path_buf(),
                subject: x.subject().to_string(),
            });
        }
        if subject_key_identifier(&x).is_none() {
            tracing::warn!(
                "the imported CA has no SubjectKeyIdentifier; OpenSSL strict mode (Python 3.13+) may reject its leaves"
            );
        }
        let ca = OrgCa {
            dir: dir.to_path_buf(),
            key,
            chain,
        };
        ca.check_currently_valid()?;
        ca.write()?;
        tracing::info!(dir = %dir.display(), subject = %ca.subject(), chain = ca.chain.len(), "imported org CA");
        Ok(ca)
    }

    /// [`import`](Self::import), then deletes `key_path`: afterwards the key
    /// exists only in the private CA directory. A fleet intermediate's key
    /// left at its drop location (`/etc/promptwall/org-ca.key`, a home
    /// directory) is one more copy from which anyone can intercept the fleet.
    pub fn import_moving_key(dir: &Path, cert_path: &Path, key_path: &Path, force: bool) -> Result<OrgCa, CaError> {
        let ca = Self::import(dir, cert_path, key_path, force)?;
        let own = Self::key_path(dir);
        let same = match (fs::canonicalize(key_path), fs::canonicalize(&own)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if !same {
            fs::remove_file(key_path).map_err(|source| CaError::KeyNotRemoved {
                path: key_path.to_path_buf(),
                source,
            })?;
            tracing::info!(from = %key_path.display(), to = %own.display(), "moved the CA key into the CA directory");
        }
        Ok(ca)
    }

    /// Loads the CA from `dir`.
    pub fn load(dir: &Path) -> Result<OrgCa, CaError> {
        let cert_path = Self::cert_path(dir);
        let key_path = Self::key_path(dir);
        match fs::metadata(&cert_path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(CaError::NotFound { dir: dir.to_path_buf() })
            }
            Err(source) => {
                return Err(CaError::Io {
                    action: "read the CA certificate",
                    path: cert_path,
                    source,
                })
            }
        }
        let chain = pem::parse_certs(&read_to_string(&cert_path, "read the CA certificate")?, &cert_path)?;
        let key = keys::key_pair_from_pem(&read_to_string(&key_path, "read the CA key")?, &key_path)?;
        let first = parse(&chain[0]).map_err(|reason| CaError::BadCertificate {
            path: cert_path.clone(),
            reason,
        })?;
        if first.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(CaError::KeyMismatch {
                cert: cert_path,
                key: key_path,
            });
        }
        if let Ok(meta) = fs::metadata(&key_path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(path = %key_path.display(), "the CA key is readable by group or others; run `chmod 600` on it");
            }
        }
        Ok(OrgCa {
            dir: dir.to_path_buf(),
            key,
            chain,
        })
    }

    fn write(&self) -> Result<(), CaError> {
        ensure_private_dir(&self.dir)?;
        write_atomic(&Self::key_path(&self.dir), self.key.serialize_pem().as_bytes(), 0o600)?;
        write_atomic(&Self::cert_path(&self.dir), self.chain_pem().as_bytes(), 0o644)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The issuing CA certificate.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    pub fn cert_pem(&self) -> String {
        pem::encode_cert(&self.chain[0])
    }

    /// The issuing certificate followed by the rest of its chain.
    pub fn chain_pem(&self) -> String {
        self.chain.iter().map(pem::encode_cert).collect()
    }

    /// What clients should trust: the self-signed root of the chain if we have
    /// it, else the issuing certificate itself.
    pub fn anchor_der(&self) -> &CertificateDer<'static> {
        self.chain
            .iter()
            .rev()
            .find(|c| is_self_signed(c))
            .unwrap_or(&self.chain[0])
    }

    pub fn anchor_pem(&self) -> String {
        pem::encode_cert(self.anchor_der())
    }

    /// Certificates sent after a leaf: the chain minus self-signed roots
    /// (clients must already have those; sending them only costs bytes).
    pub fn served_chain(&self) -> Vec<CertificateDer<'static>> {
        self.chain.iter().filter(|c| !is_self_signed(c)).cloned().collect()
    }

    /// Name constraints of every certificate in the chain; a leaf must satisfy all.
    pub fn dns_constraints(&self) -> Vec<DnsConstraints> {
        self.chain
            .iter()
            .filter_map(|c| parse(c).ok().and_then(|x| DnsConstraints::from_cert(&x)))
            .collect()
    }

    pub fn not_before(&self) -> OffsetDateTime {
        parse(&self.chain[0])
            .map(|x| asn1_time(x.validity().not_before))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    pub fn not_after(&self) -> OffsetDateTime {
        parse(&self.chain[0])
            .map(|x| asn1_time(x.validity().not_after))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    pub fn subject(&self) -> String {
        parse(&self.chain[0])
            .map(|x| x.subject().to_string())
            .unwrap_or_default()
    }

    pub(crate) fn check_currently_valid(&self) -> Result<(), CaError> {
        let now = OffsetDateTime::now_utc();
        if now < self.not_before() || now > self.not_after() {
            return Err(CaError::NotCurrentlyValid {
                subject: self.subject(),
                not_before: rfc3339(self.not_before()),
                not_after: rfc3339(self.not_after()),
            });
        }
        Ok(())
    }

    /// An rcgen issuer for signing leaves; its AKI comes from the CA's own SKI.
    pub(crate) fn issuer(&self) -> Result<Issuer<'static, KeyPair>, CaError> {
        let key = KeyPair::try_from(self.key.serialized_der())?;
        Ok(Issuer::from_ca_cert_der(&self.chain[0], key)?)
    }

    /// Describes the CA, checking the system trust store at `/`.
    pub fn status(&self) -> CaStatus {
        self.status_with_trust_root(Path::new("/"))
    }

    /// Describes the CA, checking the trust store under `root` (tests use a scratch root).
    pub fn status_with_trust_root(&self, root: &Path) -> CaStatus {
        let x = parse(&self.chain[0]).expect("loaded CA certificates parse");
        let now = OffsetDateTime::now_utc();
        let not_after = self.not_after();
        let key_path = Self::key_path(&self.dir);
        CaStatus {
            dir: self.dir.clone(),
            cert_path: Self::cert_path(&self.dir),
            key_path: key_path.clone(),
            key_mode: fs::metadata(&key_path)
                .ok()
                .map(|m| format!("{:04o}", m.permissions().mode() & 0o7777)),
            subject: x.subject().to_string(),
            issuer: x.issuer().to_string(),
            serial: x.raw_serial_as_string(),
            not_before: rfc3339(self.not_before()),
            not_after: rfc3339(not_after),
            days_left: (not_after - now).whole_days(),
            fingerprint_sha256: fingerprint_sha256(&self.chain[0]),
            key_algorithm: key_algorithm_name(&self.key),
            self_signed: is_self_signed(&self.chain[0]),
            chain_len: self.chain.len(),
            name_constraints: DnsConstraints::from_cert(&x),
            trust: trust::status(root, self.anchor_der()),
        }
    }
}

/// What `promptwall ca status` shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CaStatus {
    pub dir: PathBuf,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    /// Octal mode of the key file, e.g. "0600".
    pub key_mode: Option<String>,
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
    pub days_left: i64,
    pub fingerprint_sha256: String,
    pub key_algorithm: String,
    pub self_signed: bool,
    pub chain_len: usize,
    /// dNSName constraints of the issuing certificate; `None` = unconstrained.
    pub name_constraints: Option<DnsConstraints>,
    pub trust: TrustStatus,
}

pub(crate) fn parse<'a>(der: &'a CertificateDer<'_>) -> Result<X509Certificate<'a>, String> {
    X509Certificate::from_der(der.as_ref())
        .map(|(_, c)| c)
        .map_err(|e| e.to_string())
}

fn is_self_signed(der: &CertificateDer<'_>) -> bool {
    // Same name and (no AKI, or AKI = own SKI): enough to tell roots from intermediates.
    parse(der)
        .map(|x| {
            let aki = x.iter_extensions().find_map(|e| match e.parsed_extension() {
                x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(a) => {
                    a.key_identifier.as_ref().map(|k| k.0.to_vec())
                }
                _ => None,
            });
            let ski = subject_key_identifier(&x);
            x.subject().as_raw() == x.issuer().as_raw() && (aki.is_none() || aki == ski)
        })
        .unwrap_or(false)
}

pub(crate) fn subject_key_identifier(x: &X509Certificate<'_>) -> Option<Vec<u8>> {
    x.iter_extensions().find_map(|e| match e.parsed_extension() {
        x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
        _ => None,
    })
}

pub(crate) fn random_serial() -> SerialNumber {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system RNG works");
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x01; // and without a leading zero byte to strip
    SerialNumber::from_slice(&bytes)
}

/// Colon-separated upper-case hex, as `openssl x509 -fingerprint -sha256` prints it.
pub fn fingerprint_sha256(der: &CertificateDer<'_>) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der.as_ref());
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn key_algorithm_name(key: &KeyPair) -> String {
    let alg = key.algorithm();
    if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
        "ECDSA P-256".into()
    } else if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
        "ECDSA P-384".into()
    } else if alg == &rcgen::PKCS_ED25519 {
        "Ed25519".into()
    } else {
        "RSA".into()
    }
}

fn asn1_time(t: x509_parser::time::ASN1Time) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(t.timestamp()).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}
