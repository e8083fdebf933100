//! Machine-wide environment for runtimes that don't read the system trust
//! store: Node (`NODE_EXTRA_CA_CERTS`, `NODE_USE_SYSTEM_CA`), Python with
//! certifi (`REQUESTS_CA_BUNDLE`) and OpenSSL/rustls clients (`SSL_CERT_FILE`).
//!
//! The bundle variables always name the FULL system bundle, never the org CA
//! alone: rustls-based clients (Codex) treat `SSL_CERT_FILE` as a replacement
//! of their roots, so the org CA alone would break every other site.
//!
//! Written to three places so login shells, PAM sessions and systemd user
//! sessions (GUI-launched IDEs) all see it:
//! - `/etc/environment`: a marked block, the rest of the file untouched;
//! - `/etc/profile.d/promptwall.sh`: for logins that skip PAM;
//! - `/etc/environment.d/90-promptwall.conf`: systemd user managers.
//!
//! Every path is under `root` (packaging, scratch roots); the values written
//! are the paths as seen on the final system (without `root`). Uninstall
//! removes exactly what install added.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use promptwall_ca::trust::TrustLayout;

pub const ENVIRONMENT: &str = "etc/environment";
pub const PROFILE_SCRIPT: &str = "etc/profile.d/promptwall.sh";
pub const ENVIRONMENT_D_DIR: &str = "etc/environment.d";
pub const ENVIRONMENT_D: &str = "etc/environment.d/90-promptwall.conf";

const BEGIN: &str =
    "# >>> promptwall trust: managed by `promptwall ca install`, removed by `promptwall ca uninstall` >>>";
const END: &str = "# <<< promptwall trust <<<";
/// Flags inside the block so uninstall can restore the file byte for byte.
const FLAG_CREATED: &str = "# promptwall: this file did not exist before";
const FLAG_NOEOL: &str = "# promptwall: the file had no final newline";
/// First line of the files we own outright.
const OWNED_HEADER: &str = "# Written by `promptwall ca install`; `promptwall ca uninstall` removes it.";

/// The variables and their values on the final system.
pub fn variables(layout: TrustLayout) -> Vec<(&'static str, String)> {
    let slash = Path::new("/");
    let anchor = layout.anchor_path(slash).display().to_string();
    let bundle = layout.bundle_path(slash).display().to_string();
    vec![
        // Node < 23.8 ignores the system store; this adds the org root to its bundled roots.
        ("NODE_EXTRA_CA_CERTS", anchor),
        // Node >= 23.8 / 22.15: also trust the system store.
        ("NODE_USE_SYSTEM_CA", "1".into()),
        // requests/certifi in virtualenvs: the full system bundle.
        ("REQUESTS_CA_BUNDLE", bundle.clone()),
        // OpenSSL, httpx, rustls-native-certs: replaces the roots, hence the full bundle.
        ("SSL_CERT_FILE", bundle),
    ]
}

/// What install/uninstall changed (paths under `root`).
#[derive(Debug, Default, serde::Serialize)]
pub struct EnvChange {
    pub written: Vec<PathBuf>,
    pub removed: Vec<PathBuf>,
    /// Definitions outside our block that a later source may override.
    pub conflicts: Vec<String>,
}

pub fn install(root: &Path, layout: TrustLayout) -> anyhow::Result<EnvChange> {
    let vars = variables(layout);
    let mut change = EnvChange::default();

    let env_path = root.join(ENVIRONMENT);
    let before = match fs::read_to_string(&env_path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", env_path.display())),
    };
    let (outside, old_flags) = match &before {
        Some(text) => split_block(text),
        None => (String::new(), Vec::new()),
    };
    // Keep the flags of an earlier install: they describe the original file.
    let created = before.is_none() || old_flags.iter().any(|f| f == FLAG_CREATED);
    let noeol = old_flags.iter().any(|f| f == FLAG_NOEOL) || (!outside.is_empty() && !outside.ends_with('\n'));
    for line in outside.lines() {
        if let Some((k, _)) = parse_assignment(line) {
            if vars.iter().any(|(name, _)| *name == k) {
                change
                    .conflicts
                    .push(format!("{} sets {k} outside the promptwall block", env_path.display()));
            }
        }
    }
    let mut text = outside.clone();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text += BEGIN;
    text.push('\n');
    if created {
        text += FLAG_CREATED;
        text.push('\n');
    }
    if noeol {
        text += FLAG_NOEOL;
        text.push('\n');
    }
    for (k, v) in &vars {
        text += &format!("{k}={v}\n");
    }
    text += END;
    text.push('\n');
    if before.as_deref() != Some(text.as_str()) {
        ensure_dir(env_path.parent().unwrap())?;
        write_file(&env_path, &text)?;
        change.written.push(env_path);
    }

    let mut profile = format!("{OWNED_HEADER}\n# Defaults only: a value the user set deliberately wins.\n");
    for (k, v) in &vars {
        profile += &format!("export {k}=\"${{{k}:-{v}}}\"\n");
    }
    let envd = format!(
        "{OWNED_HEADER}\n{}",
        vars.iter().map(|(k, v)| format!("{k}={v}\n")).collect::<String>()
    );
    for (rel, content) in [(PROFILE_SCRIPT, profile), (ENVIRONMENT_D, envd)] {
        let path = root.join(rel);
        if fs::read_to_string(&path).ok().as_deref() == Some(content.as_str()) {
            continue;
        }
        ensure_dir(path.parent().unwrap())?;
        write_file(&path, &content)?;
        change.written.push(path);
    }
    Ok(change)
}

pub fn uninstall(root: &Path) -> anyhow::Result<EnvChange> {
    let mut change = EnvChange::default();
    let env_path = root.join(ENVIRONMENT);
    if let Ok(text) = fs::read_to_string(&env_path) {
        if text.lines().any(|l| l == BEGIN) {
            let (mut outside, flags) = split_block(&text);
            if flags.iter().any(|f| f == FLAG_NOEOL) && outside.ends_with('\n') {
                outside.pop();
            }
            if outside.is_empty() && flags.iter().any(|f| f == FLAG_CREATED) {
                fs::remove_file(&env_path).with_context(|| format!("cannot remove {}", env_path.display()))?;
                change.removed.push(env_path);
            } else {
                write_file(&env_path, &outside)?;
                change.written.push(env_path);
            }
        }
    }
    for rel in [PROFILE_SCRIPT, ENVIRONMENT_D] {
        let path = root.join(rel);
        match fs::read_to_string(&path) {
            Ok(t) if t.starts_with(OWNED_HEADER) => {
                fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
                change.removed.push(path);
            }
            Ok(_) => eprintln!("note: {} was not written by promptwall; left in place", path.display()),
            Err(_) => {}
        }
    }
    // Only an empty directory goes; install creates it on systems without one.
    let envd_dir = root.join(ENVIRONMENT_D_DIR);
    if fs::read_dir(&envd_dir).is_ok_and(|mut d| d.next().is_none()) && fs::remove_dir(&envd_dir).is_ok() {
        change.removed.push(envd_dir);
    }
    Ok(change)
}

/// The environment a new login session gets from the machine-wide files
/// under `root`: `/etc/environment`, then `/etc/environment.d/*.conf` (later wins).
pub fn machine_environment(root: &Path) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let mut files = vec![root.join(ENVIRONMENT)];
    if let Ok(dir) = fs::read_dir(root.join(ENVIRONMENT_D_DIR)) {
        let mut confs: Vec<PathBuf> = dir
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "conf"))
            .collect();
        confs.sort();
        files.extend(confs);
    }
    for file in files {
        let Ok(text) = fs::read_to_string(&file) else { continue };
        for line in text.lines() {
            if let Some((k, v)) = parse_assignment(line) {
                env.insert(k.to_string(), v);
            }
        }
    }
    env
}

/// `KEY=VALUE` / `KEY="VALUE"` (pam_env and environment.d syntax; no expansion).
fn parse_assignment(line: &str) -> Option<(&str, String)> {
    let line = line.trim();
    if line.starts_with('#') {
        return None;
    }
    let line = line.strip_prefix("export ").unwrap_or(line);
    let (k, v) = line.split_once('=')?;
    if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    let v = v.trim();
    let v = v
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .or_else(|| v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
        .unwrap_or(v);
    Some((k, v.to_string()))
}

/// The text outside our block, and the flag lines inside it.
fn split_block(text: &str) -> (String, Vec<String>) {
    let mut outside = String::new();
    let mut flags = Vec::new();
    let mut inside = false;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches('\n');
        if bare == BEGIN {
            inside = true;
        } else if inside && bare == END {
            inside = false;
        } else if inside {
            if bare.starts_with("# promptwall: ") {
                flags.push(bare.to_string());
            }
        } else {
            outside += line;
        }
    }
    (outside, flags)
}

fn ensure_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.is_dir() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
            .with_context(|| format!("cannot set permissions of {}", dir.display()))?;
    }
    Ok(())
}

/// Temp file + rename, world-readable (these files hold no secrets).
fn write_file(path: &Path, content: &str) -> anyhow::Result<()> {
    let tmp = path.with_file_name(format!(
        ".{}.promptwall-tmp",
        path.file_name().unwrap().to_string_lossy()
    ));
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        f.set_permissions(fs::Permissions::from_mode(0o644))?;
        f.write_all(content.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {}; run as root (or pass --root DIR)", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
        let mut out = BTreeMap::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for e in fs::read_dir(&dir).unwrap() {
                let p = e.unwrap().path();
                let meta = fs::symlink_metadata(&p).unwrap();
                let rel = p.strip_prefix(root).unwrap().to_path_buf();
                if meta.is_dir() {
                    out.insert(rel, (meta.permissions().mode(), Vec::new()));
                    stack.push(p);
                } else {
                    out.insert(rel, (meta.permissions().mode(), fs::read(&p).unwrap()));
                }
            }
        }
        out
    }

    fn install_then_uninstall_restores(original_environment: Option<&str>) {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("etc/profile.d")).unwrap();
        if let Some(t) = original_environment {
            fs::write(root.path().join(ENVIRONMENT), t).unwrap();
        }
        let before = snapshot(root.path());
        install(root.path(), TrustLayout::Debian).unwrap();
        // Idempotent: a second install changes nothing.
        let mid = snapshot(root.path());
        let again = install(root.path(), TrustLayout::Debian).unwrap();
        assert!(again.written.is_empty(), "{again:?}");
        assert_eq!(snapshot(root.path()), mid);

        let env = machine_environment(root.path());
        assert_eq!(env["SSL_CERT_FILE"], "/etc/ssl/certs/ca-certificates.crt");
        assert_eq!(env["REQUESTS_CA_BUNDLE"], "/etc/ssl/certs/ca-certificates.crt");
        assert_eq!(
            env["NODE_EXTRA_CA_CERTS"],
            "/usr/local/share/ca-certificates/promptwall-org-ca.crt"
        );
        assert_eq!(env["NODE_USE_SYSTEM_CA"], "1");
        if let Some(t) = original_environment {
            let now = fs::read_to_string(root.path().join(ENVIRONMENT)).unwrap();
            assert!(
                now.starts_with(t.trim_end_matches('\n')),
                "original content kept first: {now}"
            );
        }
        let profile = fs::read_to_string(root.path().join(PROFILE_SCRIPT)).unwrap();
        assert!(profile.contains("export SSL_CERT_FILE=\"${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}\""));

        uninstall(root.path()).unwrap();
        assert_eq!(snapshot(root.path()), before);
    }

    #[test]
    fn restores_existing_environment_file() {
        install_then_uninstall_restores(Some("PATH=\"/usr/local/bin:/usr/bin:/bin\"\nLANG=C.UTF-8\n"));
    }

    #[test]
    fn restores_file_without_final_newline() {
        install_then_uninstall_restores(Some("LANG=C.UTF-8"));
    }

    #[test]
    fn restores_empty_and_missing_environment_file() {
        install_then_uninstall_restores(Some(""));
        install_then_uninstall_restores(None);
    }

    #[test]
    fn rhel_values_name_the_rhel_bundle() {
        let vars: BTreeMap<_, _> = variables(TrustLayout::Rhel).into_iter().collect();
        assert_eq!(
            vars["SSL_CERT_FILE"],
            "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem"
        );
        assert_eq!(
            vars["NODE_EXTRA_CA_CERTS"],
            "/etc/pki/ca-trust/source/anchors/promptwall-org-ca.pem"
        );
    }

    #[test]
    fn foreign_files_are_left_alone() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("etc/profile.d")).unwrap();
        fs::write(root.path().join(PROFILE_SCRIPT), "echo mine\n").unwrap();
        let change = uninstall(root.path()).unwrap();
        assert!(change.removed.is_empty());
        assert_eq!(
            fs::read_to_string(root.path().join(PROFILE_SCRIPT)).unwrap(),
            "echo mine\n"
        );
    }

    #[test]
    fn parses_pam_env_syntax() {
        assert_eq!(parse_assignment("A=\"x y\""), Some(("A", "x y".into())));
        assert_eq!(parse_assignment("export B=1"), Some(("B", "1".into())));
        assert_eq!(parse_assignment("# C=1"), None);
        assert_eq!(parse_assignment("not an assignment"), None);
    }
}
