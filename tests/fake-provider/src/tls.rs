//! The fake provider's own test CA and the per-SNI leaves it presents.
//! Leaves carry what strict verifiers demand (SAN, SKI/AKI, EKU serverAuth;
//! Python 3.13 rejects a leaf without AKI), so every real client accepts them.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

use crate::FakeError;

/// Name used for the leaf when the client sent no SNI (it dialled an IP).
const NO_SNI_NAME: &str = "localhost";

pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pub cert_pem: String,
    pub cert_path: PathBuf,
    alpn: Vec<Vec<u8>>,
    configs: Mutex<HashMap<String, Arc<ServerConfig>>>,
}

impl TestCa {
    /// Loads `dir/ca.pem` + `dir/ca.key`, or creates them there when absent.
    pub fn load_or_create(dir: &Path, alpn: &[String]) -> Result<TestCa, FakeError> {
        let cert_path = dir.join("ca.pem");
        let key_path = dir.join("ca.key");
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| FakeError::Io { path, source }
        };
        let (cert_pem, issuer) = if cert_path.exists() && key_path.exists() {
            let cert_pem = std::fs::read_to_string(&cert_path).map_err(io(&cert_path))?;
            let key = KeyPair::from_pem(&std::fs::read_to_string(&key_path).map_err(io(&key_path))?)?;
            let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)?;
            (cert_pem, issuer)
        } else {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
            let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
            let mut params = CertificateParams::default();
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, "promptwall fake provider test CA");
            dn.push(DnType::OrganizationName, "promptwall tests");
            params.distinguished_name = dn;
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            let now = OffsetDateTime::now_utc();
            params.not_before = now - Duration::days(1);
            params.not_after = now + Duration::days(3650);
            let cert = params.self_signed(&key)?;
            let cert_pem = cert.pem();
            std::fs::write(&cert_path, &cert_pem).map_err(io(&cert_path))?;
            std::fs::write(&key_path, key.serialize_pem()).map_err(io(&key_path))?;
            (cert_pem, Issuer::new(params, key))
        };
        Ok(TestCa {
            issuer,
            cert_pem,
            cert_path,
            alpn: alpn.iter().map(|p| p.as_bytes().to_vec()).collect(),
            configs: Mutex::new(HashMap::new()),
        })
    }

    /// A server config presenting a leaf for `sni` (minted once, then cached).
    pub fn server_config(&self, sni: Option<&str>) -> Result<Arc<ServerConfig>, FakeError> {
        let name = sni.unwrap_or(NO_SNI_NAME).to_ascii_lowercase();
        if let Some(cfg) = self.configs.lock().unwrap().get(&name) {
            return Ok(cfg.clone());
        }
        let (chain, key) = self.mint_leaf(&name)?;
        let mut cfg = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        cfg.alpn_protocols = self.alpn.clone();
        let cfg = Arc::new(cfg);
        self.configs.lock().unwrap().insert(name, cfg.clone());
        Ok(cfg)
    }

    fn mint_leaf(&self, name: &str) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), FakeError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        let mut sans = vec![];
        match name.parse::<IpAddr>() {
            Ok(ip) => sans.push(SanType::IpAddress(ip)),
            Err(_) => sans.push(SanType::DnsName(name.try_into()?)),
        }
        if name == NO_SNI_NAME {
            sans.push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
            sans.push(SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        }
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(30);
        let cert = params.signed_by(&key, &self.issuer)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Ok((vec![cert.der().clone()], key))
    }
}
