//! The config file, composed: each crate owns its section and the agent
//! puts them together, loads them and validates them here, in one place.
//!
//! | section | type | owner |
//! |---|---|---|
//! | `[listen]`, `[upstream]`, `[pipeline]`, `[limits]`, `[[providers]]` | `promptwall_proxy::config::*` | proxy |
//! | `[routing]` | `promptwall_proxy::routing::RoutingConfig` | proxy |
//! | `[quota]` | `promptwall_proxy::quota::QuotaConfig` | proxy |
//! | `[ca]` | [`promptwall_ca::CaConfig`] | ca |
//! | `[audit]`, `[audit.central]` | [`promptwall_audit::AuditConfig`] | audit |
//! | `[intercept]` | [`crate::intercept::config::InterceptConfig`] | agent (redirect) |
//! | `[alerts]` | [`crate::alerts::AlertsConfig`] | agent |
//! | `[traces]` | [`crate::traces::TracesConfig`] | agent |
//! | `machine_id` | here | agent |
//!
//! Loading, through figment, later sources overriding earlier ones:
//!
//! 1. the base file: `--config PATH` (or `PROMPTWALL_CONFIG`), else
//!    /etc/promptwall/config.toml, which may be missing (all defaults);
//! 2. drop-ins `<base file's directory>/config.d/*.toml`, in lexical order of
//!    their names, so MDM or Ansible can own one small file (say the central
//!    audit URL) without rewriting the admin's config;
//! 3. environment variables `PROMPTWALL_<SECTION>__<KEY>` (a double
//!    underscore between levels, any case: `PROMPTWALL_AUDIT__CENTRAL__URL`),
//!    and `PROMPTWALL_MACHINE_ID`. Values are figment values: numbers,
//!    booleans and `[arrays]` are parsed, anything else is a string; quote
//!    a string that looks like a number (`PROMPTWALL_MACHINE_ID='"1234"'`).
//!    Other `PROMPTWALL_*` variables (one underscore: `PROMPTWALL_CONFIG`,
//!    `PROMPTWALL_LOG`) are not config keys.
//!
//! Tables merge key by key; any other value, arrays included (e.g.
//! `[[providers]]`), replaces the earlier one. Unknown keys are errors that
//! name the key and the file (or variable) they came from.

use std::path::{Path, PathBuf};

use crate::alerts::AlertsConfig;
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use promptwall_audit::AuditConfig;
use promptwall_ca::CaConfig;
use promptwall_proxy::config::{AuditSettings, LimitsConfig, ListenConfig, PipelineConfig, UpstreamConfig};
use promptwall_proxy::quota::QuotaConfig;
use promptwall_proxy::routing::RoutingConfig;
use serde::{Deserialize, Serialize};

use crate::intercept::config::InterceptConfig;

pub const DEFAULT_CONFIG_PATH: &str = "/etc/promptwall/config.toml";
/// Prefix of environment overrides; levels are separated by [`ENV_SPLIT`].
pub const ENV_PREFIX: &str = "PROMPTWALL_";
pub const ENV_SPLIT: &str = "__";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}; pass --config PATH or create the file (see deploy/config.example.toml)")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot list config drop-ins in {dir}: {source}; fix the directory's permissions or remove it")]
    DropIns { dir: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Load(String),
    #[error("config is inconsistent: {0}")]
    Invalid(String),
}

/// The whole config file. Every key is optional.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    pub listen: ListenConfig,
    pub ca: CaConfig,
    pub audit: AuditConfig,
    pub upstream: UpstreamConfig,
    pub intercept: InterceptConfig,
    pub pipeline: PipelineConfig,
    pub limits: LimitsConfig,
    /// Providers are data: the shipped catalog plus `[providers.NAME]`
    /// changes (`crate::providers`).
    pub providers: crate::providers::ProviderCatalog,
    /// Stable id of this machine in the fleet store; default: /etc/machine-id.
    pub machine_id: Option<String>,
    /// Upstreams, accounts and rules deciding where requests go.
    pub routing: RoutingConfig,
    /// Limits by identity: requests, tokens and cost per user, tool, …
    pub quota: QuotaConfig,
    /// Signed webhooks for budget crossings, anomalies, blocked secrets…
    pub alerts: AlertsConfig,
    /// OTLP traces, one span per exchange (off unless an endpoint is set).
    pub traces: crate::traces::TracesConfig,
    /// Where container runtimes keep the records that name a container
    /// and its image (Docker, Podman, containerd defaults).
    pub containers: promptwall_proxy::containers::ContainerRecords,
}

/// The drop-in directory for a config file: `<its directory>/config.d`.
pub fn overlay_dir(config_path: &Path) -> PathBuf {
    config_path.parent().unwrap_or(Path::new("/")).join("config.d")
}

impl AgentConfig {
    /// Loads the base file, its drop-ins and the environment overrides, then
    /// validates. A missing file at the default path means "all defaults";
    /// a missing `--config` file is an error.
    pub fn load(path: Option<&Path>) -> Result<AgentConfig, ConfigError> {
        Self::load_with_env_prefix(path, ENV_PREFIX)
    }

    /// [`AgentConfig::load`] with another variable prefix (tests, which run in parallel).
    fn load_with_env_prefix(path: Option<&Path>, env_prefix: &str) -> Result<AgentConfig, ConfigError> {
        match path {
            Some(path) => Self::load_from(path.to_path_buf(), true, env_prefix),
            None => Self::load_from(PathBuf::from(DEFAULT_CONFIG_PATH), false, env_prefix),
        }
    }

    /// `base` was named by the user (`explicit`: it must exist) or is the
    /// default path (missing means all defaults).
    fn load_from(base: PathBuf, explicit: bool, env_prefix: &str) -> Result<AgentConfig, ConfigError> {
        // Read errors are ours to word (`file_exact` fails on a missing file).
        let mut figment = Figment::new();
        match std::fs::File::open(&base) {
            Ok(_) => figment = figment.merge(Toml::file_exact(&base)),
            Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(ConfigError::Read { path: base, source }),
        }
        for file in overlay_files(&overlay_dir(&base))? {
            figment = figment.merge(Toml::file_exact(file));
        }
        // After the prefix (case-insensitive) keys are lowercased; only those
        // naming a level (`__`) and `machine_id` are config keys.
        let env = Env::prefixed(env_prefix)
            .filter(|k| k.as_str().contains(ENV_SPLIT) || k == "machine_id")
            .split(ENV_SPLIT);
        let config: AgentConfig = figment
            .merge(env)
            .extract()
            .map_err(|e| ConfigError::Load(describe(e, env_prefix)))?;
        config.validate()?;
        Ok(config)
    }

    /// Every cross-section and per-section check; the error says what is
    /// wrong and what to change.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.providers.check().map_err(ConfigError::Invalid)?;
        // The proxy checks its own sections ([listen], [limits], providers).
        self.proxy()
            .validate()
            .map_err(|promptwall_proxy::config::ConfigError::Invalid(why)| ConfigError::Invalid(why))?;
        self.alerts
            .check()
            .map_err(|why| ConfigError::Invalid(format!("[alerts]: {why}")))?;
        self.traces
            .check()
            .map_err(|why| ConfigError::Invalid(format!("[traces]: {why}")))?;
        Ok(())
    }

    /// The proxy's settings: its own sections plus what it reads from
    /// `[audit]`, `[intercept]` and `[ca]`.
    pub fn proxy(&self) -> promptwall_proxy::config::Config {
        promptwall_proxy::config::Config {
            listen: self.listen.clone(),
            upstream: self.upstream.clone(),
            pipeline: self.pipeline.clone(),
            limits: self.limits.clone(),
            providers: self.providers.providers(),
            machine_id: self.machine_id.clone(),
            audit: audit_settings(&self.audit),
            transparent: self.intercept.transparent(),
            ca_dir: self.ca.dir.clone(),
            routing: self.routing.clone(),
            quota: self.quota.clone(),
        }
    }

    /// Every host name that belongs to a provider (TLS interception list).
    pub fn provider_hosts(&self) -> Vec<String> {
        self.providers.providers().into_iter().flat_map(|p| p.hosts).collect()
    }

    /// Machine id for the fleet store: config, else /etc/machine-id, else hostname.
    pub fn machine_id(&self) -> String {
        promptwall_proxy::config::machine_id(self.machine_id.as_deref())
    }
}

fn audit_settings(a: &AuditConfig) -> AuditSettings {
    AuditSettings {
        url: a.url.clone(),
        capture_bodies: a.capture_bodies,
        capture_max_bytes: a.capture_max_bytes,
        fingerprint_key: a.fingerprint_key.clone(),
        min_free_bytes: a.min_free_bytes,
        price_table: a.price_table.clone(),
    }
}

fn overlay_files(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        // Unreadable (non-root user, 0750 directory): the base config alone, as before drop-ins existed.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return Ok(Vec::new()),
        Err(source) => {
            return Err(ConfigError::DropIns {
                dir: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// Every error figment found, each with its key and the file or variable
/// it came from, then what to do.
fn describe(e: figment::Error, env_prefix: &str) -> String {
    let mut lines = Vec::new();
    for e in e {
        let key = if e.path.is_empty() {
            String::new()
        } else {
            format!(" (key {})", e.path.join("."))
        };
        let source = match (&e.metadata, e.metadata.as_ref().and_then(|m| m.source.as_ref())) {
            (_, Some(figment::Source::File(p))) => format!("config file {}", p.display()),
            (Some(m), _) if m.name.contains("environment") => format!(
                "environment variable {env_prefix}{}",
                e.path.join(ENV_SPLIT).to_uppercase()
            ),
            (Some(m), _) => m.name.to_string(),
            (None, _) => "the config".into(),
        };
        lines.push(format!("{source} is not valid: {}{key}", e.kind));
    }
    format!(
        "{}; fix or remove the key named above (every key is documented in deploy/config.example.toml)",
        lines.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config directory with `config.toml` and `config.d/` drop-ins.
    fn dir_with(base: &str, drop_ins: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.toml"), base).unwrap();
        std::fs::create_dir(dir.path().join("config.d")).unwrap();
        for (name, text) in drop_ins {
            std::fs::write(dir.path().join("config.d").join(name), text).unwrap();
        }
        dir
    }

    /// Loads `dir`'s config with environment overrides under `prefix`, a
    /// prefix of the test's own so parallel tests don't see each other's.
    fn load(dir: &tempfile::TempDir, prefix: &str) -> Result<AgentConfig, ConfigError> {
        AgentConfig::load_with_env_prefix(Some(&dir.path().join("config.toml")), prefix)
    }

    #[test]
    fn an_empty_file_is_all_defaults() {
        let dir = dir_with("", &[]);
        assert_eq!(load(&dir, "PWTEST_EMPTY_").unwrap(), AgentConfig::default());
    }

    #[test]
    fn the_example_config_equals_the_defaults() {
        let dir = dir_with(include_str!("../../deploy/config.example.toml"), &[]);
        assert_eq!(load(&dir, "PWTEST_EXAMPLE_").unwrap(), AgentConfig::default());
    }

    #[test]
    fn the_default_sections_give_the_proxy_its_defaults() {
        assert_eq!(
            AgentConfig::default().proxy(),
            promptwall_proxy::config::Config::default()
        );
    }

    #[test]
    fn an_overlay_in_config_d_overrides_the_base_and_a_later_file_an_earlier_one() {
        let dir = dir_with(
            "machine_id = \"base\"\n[listen]\nexplicit = \"127.0.0.1:1111\"\n[audit]\ncapture_bodies = true\n",
            &[
                (
                    "10-fleet.toml",
                    "machine_id = \"fleet\"\n[audit.central]\nurl = \"postgres://central/x\"\n[listen]\nexplicit = \"127.0.0.1:2222\"\n",
                ),
                ("20-site.toml", "machine_id = \"laptop-7\"\n"),
                ("ignored.txt", "not = toml at all ["),
            ],
        );
        let c = load(&dir, "PWTEST_OVERLAY_").unwrap();
        assert_eq!(c.machine_id.as_deref(), Some("laptop-7"));
        assert_eq!(c.listen.explicit, Some("127.0.0.1:2222".parse().unwrap()));
        assert!(
            c.audit.capture_bodies,
            "keys the drop-ins don't name keep the base value"
        );
        assert_eq!(
            c.audit.central.as_ref().map(|x| x.url.as_str()),
            Some("postgres://central/x")
        );
        assert_eq!(c.listen.admin_socket, AgentConfig::default().listen.admin_socket);
    }

    #[test]
    fn an_env_var_overrides_both_the_base_and_the_overlays() {
        let dir = dir_with(
            "[audit]\ncapture_max_bytes = 1\n[intercept]\nports = [443]\n",
            &[(
                "10-fleet.toml",
                "[audit]\ncapture_max_bytes = 2\n[audit.central]\nurl = \"postgres://a/x\"\n",
            )],
        );
        std::env::set_var("PWTEST_ENV_AUDIT__CAPTURE_MAX_BYTES", "3");
        std::env::set_var("PWTEST_ENV_AUDIT__CENTRAL__URL", "postgres://b/y");
        std::env::set_var("PWTEST_ENV_INTERCEPT__PORTS", "[443, 8443]");
        std::env::set_var("PWTEST_ENV_AUDIT__SYNC", "normal");
        // Looks like a number: quoted to stay a string.
        std::env::set_var("PWTEST_ENV_MACHINE_ID", "\"1234\"");
        std::env::set_var("PWTEST_ENV_CONFIG", "/not/a/config/key");
        let c = load(&dir, "PWTEST_ENV_").unwrap();
        assert_eq!(c.audit.capture_max_bytes, 3);
        assert_eq!(c.audit.central.as_ref().map(|x| x.url.as_str()), Some("postgres://b/y"));
        assert_eq!(c.intercept.ports, vec![443, 8443]);
        assert_eq!(c.audit.sync, promptwall_audit::SyncMode::Normal);
        assert_eq!(c.machine_id.as_deref(), Some("1234"), "an all-digit id stays a string");
    }

    #[test]
    fn an_unknown_env_key_is_an_error_naming_the_variable() {
        let dir = dir_with("", &[]);
        std::env::set_var("PWTEST_BADENV_AUDIT__CAPTUR_BODIES", "true");
        let err = load(&dir, "PWTEST_BADENV_").unwrap_err().to_string();
        assert!(err.contains("PWTEST_BADENV_AUDIT__CAPTUR_BODIES"), "{err}");
    }

    #[test]
    fn an_unknown_key_in_an_overlay_is_an_error_that_names_the_file() {
        let dir = dir_with("", &[("50-typo.toml", "[listen]\nexplicitt = \"127.0.0.1:1\"\n")]);
        let err = load(&dir, "PWTEST_TYPO_").unwrap_err().to_string();
        assert!(err.contains("explicitt") && err.contains("50-typo.toml"), "{err}");
    }

    #[test]
    fn an_unknown_key_in_the_base_file_is_an_error_naming_it() {
        let dir = dir_with("[audit]\nsync = \"full\"\ncapture_bodiez = true\n", &[]);
        let err = load(&dir, "PWTEST_BASETYPO_").unwrap_err().to_string();
        assert!(err.contains("capture_bodiez") && err.contains("config.toml"), "{err}");
    }

    #[test]
    fn a_drop_in_that_is_not_toml_is_an_error_naming_the_file() {
        let dir = dir_with("", &[("30-broken.toml", "[listen\n")]);
        let err = load(&dir, "PWTEST_BROKEN_").unwrap_err().to_string();
        assert!(err.contains("30-broken.toml"), "{err}");
    }

    #[test]
    fn a_missing_explicit_config_file_is_an_error_and_the_default_path_may_be_missing() {
        let dir = tempfile::tempdir().unwrap();
        let err = AgentConfig::load_with_env_prefix(Some(&dir.path().join("missing.toml")), "PWTEST_MISSING_")
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.toml") && err.contains("--config"), "{err}");
        // The exploit: `env -i promptwall doctor` on a machine without
        // /etc/promptwall/config.toml failed instead of using the defaults.
        let config = AgentConfig::load_from(dir.path().join("config.toml"), false, "PWTEST_MISSING_").unwrap();
        assert_eq!(config.proxy(), promptwall_proxy::config::Config::default());
    }

    #[test]
    fn the_issue_interface_keys_parse() {
        let dir = dir_with(
            r#"
[listen]
explicit = "127.0.0.1:8787"
transparent = "127.0.0.1:15443"
[ca]
dir = "/var/lib/promptwall/ca"
[audit]
url = "sqlite:///var/lib/promptwall/audit.db"
[upstream]
extra_roots = ["/path/to/extra-ca.pem"]
[upstream.resolve]
"api.anthropic.com" = "127.0.0.1:8443"
[intercept]
enabled = true
cgroup = "/sys/fs/cgroup/unified"
addresses = ["160.79.104.0/23"]
fail = "closed"
foreign_sni = "refuse"
"#,
            &[],
        );
        let c = load(&dir, "PWTEST_ISSUE_").unwrap();
        assert_eq!(
            c.upstream.resolve["api.anthropic.com"],
            "127.0.0.1:8443".parse().unwrap()
        );
        assert_eq!(c.intercept.fail, crate::intercept::config::FailMode::Closed);
        assert_eq!(c.intercept.cgroup.as_deref(), Some(Path::new("/sys/fs/cgroup/unified")));
        let proxy = c.proxy();
        assert!(proxy.transparent.fail_closed);
        assert_eq!(
            proxy.transparent.foreign_sni,
            promptwall_proxy::config::ForeignSni::Refuse
        );
    }

    #[test]
    fn an_inconsistent_config_is_refused_saying_what_to_change() {
        let dir = dir_with("[limits]\nmax_inspected_exchanges = 0\n", &[]);
        let err = load(&dir, "PWTEST_INCONS_").unwrap_err().to_string();
        assert!(err.contains("max_inspected_exchanges"), "{err}");
        let dir = dir_with("[listen]\nrequest_id_header = \"bad header\"\n", &[]);
        let err = load(&dir, "PWTEST_INCONS2_").unwrap_err().to_string();
        assert!(err.contains("request_id_header"), "{err}");
    }
}
