//! `promptwall ca ...`: the org CA lifecycle and trust-store installation,
//! plus [`load_server_tls`], which `up` uses to terminate TLS with minted leaves.

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::AgentConfig;
use anyhow::Context;
use promptwall_ca::trust::{self, NoRefresh, StoreRefresher, SystemRefresher};
use promptwall_ca::{registrable_domains, CaStatus, InitOptions, LeafMinter, OrgCa};

#[derive(clap::Subcommand)]
pub enum CaCommand {
    /// Create the org root CA (ECDSA P-256), name-constrained to the provider domains.
    Init(InitArgs),
    /// Use an existing org CA or intermediate; the certificate file may hold its chain.
    /// The key file is moved into the CA directory (`--keep-key` leaves it).
    Import(ImportArgs),
    /// Print the CA certificate clients should trust (PEM) to stdout.
    Export {
        /// Print the whole stored chain (issuing certificate first) instead.
        #[arg(long)]
        chain: bool,
    },
    /// Add the CA to the system trust store (Debian or RHEL layout).
    Install(TrustArgs),
    /// How containers trust the CA: writes `promptwall-org-ca.crt` into DIR
    /// and prints the Dockerfile lines, `docker run` flags and
    /// devcontainer.json keys that use it.
    Container {
        /// Where to write the certificate (next to a Dockerfile).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The snippets as one JSON object, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Remove the CA from the system trust store.
    Uninstall(TrustArgs),
    /// Show the CA: subject, validity, fingerprint, name constraints, trust.
    Status {
        /// One JSON object, for scripts.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
pub struct InitArgs {
    /// Don't name-constrain the root (a stolen key could then impersonate any site).
    #[arg(long)]
    pub no_name_constraints: bool,
    /// Replace an existing CA.
    #[arg(long)]
    pub force: bool,
    /// Permitted domain (repeatable); default: the registrable domains of the configured provider hosts.
    #[arg(long = "domain", value_name = "DOMAIN")]
    pub domains: Vec<String>,
    /// Subject common name; default "promptwall org CA (<hostname>)".
    #[arg(long)]
    pub common_name: Option<String>,
    #[arg(long, default_value_t = 3650)]
    pub validity_days: u32,
}

#[derive(clap::Args)]
pub struct ImportArgs {
    /// PEM certificate of the CA or intermediate, optionally followed by its chain.
    #[arg(long)]
    pub cert: PathBuf,
    /// Its unencrypted PEM private key (PKCS#8, SEC1 or PKCS#1).
    #[arg(long)]
    pub key: PathBuf,
    /// Replace an existing CA.
    #[arg(long)]
    pub force: bool,
    /// Leave the key file in place (default: it is removed once copied into the CA directory).
    #[arg(long)]
    pub keep_key: bool,
}

#[derive(clap::Args)]
pub struct TrustArgs {
    /// Operate on the system under this directory (packaging, scratch roots).
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
    /// Write or remove the anchor file only; don't run update-ca-certificates / update-ca-trust.
    #[arg(long)]
    pub no_refresh: bool,
    /// Leave the machine-wide environment (/etc/environment, profile.d, environment.d) alone.
    #[arg(long)]
    pub no_env: bool,
}

pub async fn run(cmd: CaCommand, config: &AgentConfig) -> anyhow::Result<()> {
    let dir = config.ca.dir.clone();
    match cmd {
        CaCommand::Init(args) => init(args, config),
        CaCommand::Import(args) => {
            let ca = if args.keep_key {
                OrgCa::import(&dir, &args.cert, &args.key, args.force)?
            } else {
                OrgCa::import_moving_key(&dir, &args.cert, &args.key, args.force)?
            };
            report_created("imported", &ca);
            if !args.keep_key {
                println!(
                    "  key                 moved from {} to {}",
                    args.key.display(),
                    OrgCa::key_path(&dir).display()
                );
            }
            Ok(())
        }
        CaCommand::Export { chain } => {
            let ca = OrgCa::load(&dir)?;
            print!("{}", if chain { ca.chain_pem() } else { ca.anchor_pem() });
            Ok(())
        }
        CaCommand::Container { dir: out, json } => {
            let ca = OrgCa::load(&dir)?;
            let file = out.join(CONTAINER_CA_FILE);
            std::fs::write(&file, ca.anchor_pem())
                .with_context(|| format!("cannot write {}; pick a writable --dir", file.display()))?;
            let g = ContainerGuidance::new();
            if json {
                println!("{}", serde_json::to_string_pretty(&g)?);
            } else {
                println!("wrote {} ({})\n", file.display(), ca.subject());
                println!(
                    "# Dockerfile (Debian/Ubuntu images; the file above next to it):\n{}\n",
                    g.dockerfile
                );
                println!("# without rebuilding, mount this host's bundle:\n{}\n", g.docker_run);
                println!("# devcontainer.json:\n{}", g.devcontainer);
            }
            Ok(())
        }
        CaCommand::Install(args) => {
            let ca = OrgCa::load(&dir)?;
            let change = trust::install(&args.root, ca.anchor_der(), refresher(&args))?;
            if change.changed {
                println!(
                    "installed {} into the {:?} trust store at {}",
                    ca.subject(),
                    change.layout,
                    change.anchor_path.display()
                );
            } else {
                println!(
                    "already installed at {}; trust bundle refreshed",
                    change.anchor_path.display()
                );
            }
            if args.no_env {
                println!(
                    "machine-wide environment left alone (--no-env); Node and certifi-based clients won't trust the CA"
                );
            } else {
                let env = super::trust_env::install(&args.root, change.layout)?;
                for path in &env.written {
                    println!("wrote the machine-wide trust environment to {}", path.display());
                }
                for c in &env.conflicts {
                    eprintln!("warning: {c}; the promptwall block comes later and wins for PAM sessions");
                }
            }
            Ok(())
        }
        CaCommand::Uninstall(args) => {
            if !args.no_env {
                let env = super::trust_env::uninstall(&args.root)?;
                for path in env.removed.iter().chain(&env.written) {
                    println!("removed the promptwall trust environment from {}", path.display());
                }
            }
            let change = trust::uninstall(&args.root, refresher(&args))?;
            if change.changed {
                println!(
                    "removed {} from the {:?} trust store",
                    change.anchor_path.display(),
                    change.layout
                );
            } else {
                println!("not installed ({} absent); nothing to do", change.anchor_path.display());
            }
            Ok(())
        }
        CaCommand::Status { json } => status(&dir, json),
    }
}

fn refresher(args: &TrustArgs) -> &'static dyn StoreRefresher {
    if args.no_refresh {
        &NoRefresh
    } else {
        &SystemRefresher
    }
}

fn init(args: InitArgs, config: &AgentConfig) -> anyhow::Result<()> {
    let name_constraints = config.ca.name_constraints && !args.no_name_constraints;
    let domains = if args.domains.is_empty() {
        registrable_domains(config.provider_hosts().iter().map(String::as_str))
    } else {
        args.domains
    };
    let opts = InitOptions {
        permitted_domains: if name_constraints { domains } else { Vec::new() },
        name_constraints,
        common_name: args.common_name.unwrap_or_else(promptwall_ca::default_common_name),
        validity_days: args.validity_days,
        force: args.force,
    };
    let ca = OrgCa::init(&config.ca.dir, &opts)?;
    report_created("created", &ca);
    if !name_constraints {
        eprintln!(
            "warning: the CA is not name-constrained; anyone who obtains {} can impersonate any site to this machine",
            OrgCa::key_path(&config.ca.dir).display()
        );
    }
    Ok(())
}

fn report_created(verb: &str, ca: &OrgCa) {
    let st = ca.status();
    println!("{verb} org CA {} in {}", st.subject, st.dir.display());
    println!("  SHA-256 fingerprint {}", st.fingerprint_sha256);
    println!("  name constraints    {}", constraints_text(&st));
    println!(
        "next: `sudo promptwall ca install` so this machine trusts it; restart a running `promptwall up` to use it"
    );
}

fn constraints_text(st: &CaStatus) -> String {
    let Some(c) = &st.name_constraints else {
        return "none (unconstrained)".into();
    };
    let mut text = c.permitted.join(", ");
    if !c.excluded.is_empty() {
        text.push_str(&format!("; excluded {}", c.excluded.join(", ")));
    }
    if !c.excluded_ip.is_empty() {
        text.push_str(&format!("; excluded IP ranges {}", c.excluded_ip.join(", ")));
    }
    text
}

fn status(dir: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let ca = match OrgCa::load(dir) {
        Ok(ca) => ca,
        Err(e @ promptwall_ca::CaError::NotFound { .. }) if json => {
            println!(
                "{}",
                serde_json::json!({"present": false, "dir": dir, "error": e.to_string()})
            );
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    };
    let st = ca.status();
    if json {
        let mut v = serde_json::to_value(&st).context("cannot encode the CA status as JSON")?;
        v["present"] = true.into();
        println!("{v}");
        return Ok(());
    }
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header(vec!["item", "value"]);
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let days = if st.days_left < 0 {
        format!("EXPIRED {} days ago", -st.days_left)
    } else {
        st.days_left.to_string()
    };
    let trust_text = match (&st.trust.layout, st.trust.installed, st.trust.in_bundle) {
        (None, ..) => "no supported trust store found".to_string(),
        (Some(_), true, true) => format!("installed ({})", path_text(&st.trust.anchor_path)),
        (Some(_), true, false) => format!(
            "anchor present ({}) but bundle not refreshed; run `sudo promptwall ca install`",
            path_text(&st.trust.anchor_path)
        ),
        (Some(_), false, _) => "not installed; run `sudo promptwall ca install`".to_string(),
    };
    let rows: Vec<(&str, String)> = vec![
        ("subject", st.subject.clone()),
        (
            "issuer",
            if st.self_signed {
                "(self-signed root)".into()
            } else {
                st.issuer.clone()
            },
        ),
        ("serial", st.serial.clone()),
        ("valid from", st.not_before.clone()),
        ("valid until", st.not_after.clone()),
        ("days left", days),
        ("SHA-256", st.fingerprint_sha256.clone()),
        (
            "key",
            format!(
                "{} ({}, mode {})",
                st.key_algorithm,
                st.key_path.display(),
                st.key_mode.as_deref().unwrap_or("?")
            ),
        ),
        ("name constraints", constraints_text(&st)),
        (
            "chain",
            format!("{} certificate(s) in {}", st.chain_len, st.cert_path.display()),
        ),
        ("system trust", trust_text),
        ("trusted by bundle", yes_no(st.trust.in_bundle).into()),
    ];
    for (k, v) in rows {
        table.add_row(vec![k.to_string(), v]);
    }
    println!("{table}");
    Ok(())
}

fn path_text(p: &Option<PathBuf>) -> String {
    p.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
}

/// ALPN offered to intercepted clients; the proxy serves both.
const SERVER_ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

/// The leaf minter for the configured CA, or `None` when no CA exists yet.
pub fn load_minter(config: &AgentConfig) -> anyhow::Result<Option<Arc<LeafMinter>>> {
    let ca = match OrgCa::load(&config.ca.dir) {
        Ok(ca) => ca,
        Err(promptwall_ca::CaError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let validity = config.ca.leaf_validity();
    let minter = LeafMinter::new(&ca, validity)?;
    for host in config.provider_hosts() {
        if let Err(e) = minter.check_name(&host) {
            tracing::warn!("provider host {host} cannot be intercepted: {e}");
        }
    }
    Ok(Some(minter))
}

/// TLS server config for the terminating listeners, or `None` without a CA.
pub fn load_server_tls(config: &AgentConfig) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
    Ok(load_minter(config)?.map(|m| m.server_config(SERVER_ALPN)))
}

/// The certificate file `ca container` writes, as the snippets name it.
pub const CONTAINER_CA_FILE: &str = "promptwall-org-ca.crt";

/// How a container image or devcontainer trusts the org CA: the system
/// store for OpenSSL/Python/curl, NODE_EXTRA_CA_CERTS for node tools
/// (which ignore the system store), the same as the host's installer.
#[derive(Debug, serde::Serialize)]
pub struct ContainerGuidance {
    pub dockerfile: String,
    pub docker_run: String,
    pub devcontainer: String,
}

impl ContainerGuidance {
    pub fn new() -> ContainerGuidance {
        let anchor = format!("/usr/local/share/ca-certificates/{CONTAINER_CA_FILE}");
        let bundle = "/etc/ssl/certs/ca-certificates.crt";
        ContainerGuidance {
            dockerfile: format!(
                "COPY {CONTAINER_CA_FILE} {anchor}\nRUN update-ca-certificates\n\
                 ENV NODE_EXTRA_CA_CERTS={anchor} REQUESTS_CA_BUNDLE={bundle} SSL_CERT_FILE={bundle}"
            ),
            docker_run: format!(
                "docker run -v {bundle}:{bundle}:ro -e NODE_EXTRA_CA_CERTS={bundle} -e REQUESTS_CA_BUNDLE={bundle} …"
            ),
            devcontainer: serde_json::to_string_pretty(&serde_json::json!({
                "mounts": [format!("source={bundle},target={bundle},type=bind,readonly")],
                "containerEnv": {"NODE_EXTRA_CA_CERTS": bundle, "REQUESTS_CA_BUNDLE": bundle, "SSL_CERT_FILE": bundle}
            }))
            .expect("json serialises"),
        }
    }
}

#[cfg(test)]
mod container_tests {
    use super::*;

    #[test]
    fn container_guidance_trusts_the_ca_for_openssl_python_and_node_alike() {
        let g = ContainerGuidance::new();
        assert!(g
            .dockerfile
            .starts_with("COPY promptwall-org-ca.crt /usr/local/share/ca-certificates/"));
        assert!(g.dockerfile.contains("RUN update-ca-certificates"));
        for text in [&g.dockerfile, &g.docker_run, &g.devcontainer] {
            assert!(text.contains("NODE_EXTRA_CA_CERTS"), "{text}");
            assert!(text.contains("REQUESTS_CA_BUNDLE"), "{text}");
        }
        let dc: serde_json::Value = serde_json::from_str(&g.devcontainer).unwrap();
        assert!(dc["mounts"][0].as_str().unwrap().ends_with("readonly"));
    }
}
