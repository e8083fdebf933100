//! Fleet configuration: the base file (`--config`, `PROMPTWALL_CONFIG`, or
//! /etc/promptwall/config.toml) plus drop-ins from `config.d/*.toml` beside
//! it, in name order, so MDM or Ansible can own one small file (say the
//! central audit URL) without rewriting the admin's config.
//!
//! Merging is by key: tables merge recursively, any other value (arrays
//! included, e.g. `[[providers]]`) replaces the earlier one.

use std::path::{Path, PathBuf};

use anyhow::Context;
use promptwall_proxy::config::{Config, ConfigError, DEFAULT_CONFIG_PATH};

/// The drop-in directory for a config file: `<its directory>/config.d`.
pub fn overlay_dir(config_path: &Path) -> PathBuf {
    config_path.parent().unwrap_or(Path::new("/")).join("config.d")
}

/// Loads the config and its drop-ins. Without drop-ins this is exactly
/// [`Config::load`].
pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
    let base_path = path
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH));
    let overlays = overlay_files(&overlay_dir(&base_path))?;
    if overlays.is_empty() {
        return Ok(Config::load(path)?);
    }
    let mut merged = match std::fs::read_to_string(&base_path) {
        Ok(text) => parse_table(&text, &base_path)?,
        Err(e) if path.is_none() && e.kind() == std::io::ErrorKind::NotFound => toml::Table::new(),
        Err(source) => {
            return Err(ConfigError::Read {
                path: base_path,
                source,
            }
            .into())
        }
    };
    for file in &overlays {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("cannot read config drop-in {}", file.display()))?;
        merge(&mut merged, parse_table(&text, file)?);
    }
    let text = toml::to_string(&merged).context("cannot re-encode the merged config")?;
    let config = Config::parse(&text).map_err(|message| {
        anyhow::anyhow!(
            "config {} with drop-ins {} is not valid: {message}; fix the key named above (see deploy/config.example.toml)",
            base_path.display(),
            overlays.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        )
    })?;
    config.validate()?;
    Ok(config)
}

fn overlay_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        // Unreadable (non-root user, 0750 directory): the base config alone, as before drop-ins existed.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot list config drop-ins in {}", dir.display())),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

fn parse_table(text: &str, path: &Path) -> anyhow::Result<toml::Table> {
    text.parse::<toml::Table>().map_err(|e| {
        ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
        .into()
    })
}

fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(key, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_ins_merge_by_key_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("config.toml");
        std::fs::write(
            &base,
            "machine_id = \"base\"\n[listen]\nexplicit = \"127.0.0.1:1111\"\n[audit]\ncapture_bodies = true\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("config.d")).unwrap();
        std::fs::write(
            dir.path().join("config.d/10-fleet.toml"),
            "[audit.central]\nurl = \"postgres://central/x\"\n[listen]\nexplicit = \"127.0.0.1:2222\"\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("config.d/20-site.toml"), "machine_id = \"laptop-7\"\n").unwrap();
        std::fs::write(dir.path().join("config.d/ignored.txt"), "not = toml at all [").unwrap();
        let c = load(Some(&base)).unwrap();
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
        assert_eq!(c.listen.admin_socket, Config::default().listen.admin_socket);
    }

    #[test]
    fn without_drop_ins_it_is_config_load() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("config.toml");
        std::fs::write(&base, "[listen]\nexplicit = \"127.0.0.1:1111\"\n").unwrap();
        assert_eq!(load(Some(&base)).unwrap(), Config::load(Some(&base)).unwrap());
        assert!(
            load(Some(&dir.path().join("missing.toml"))).is_err(),
            "an explicit path must exist"
        );
    }

    #[test]
    fn a_bad_drop_in_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("config.toml");
        std::fs::write(&base, "").unwrap();
        std::fs::create_dir(dir.path().join("config.d")).unwrap();
        std::fs::write(
            dir.path().join("config.d/50-typo.toml"),
            "[listen]\nexplicitt = \"127.0.0.1:1\"\n",
        )
        .unwrap();
        let err = format!("{:#}", load(Some(&base)).unwrap_err());
        assert!(err.contains("explicitt") && err.contains("50-typo.toml"), "{err}");
    }
}
