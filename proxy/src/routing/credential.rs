//! An account's API key: read once at start from an environment variable
//! or a file, and never printed (its `Debug` and `Display` say only where
//! it came from).

use std::sync::Arc;

use super::config::AccountConfig;

#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    key: Arc<str>,
    /// `env DEEPSEEK_KEY` or `file /etc/...`, for messages.
    source: String,
}

impl Credential {
    /// The account's key, None for an account without one. The error names
    /// the variable or file, never a value.
    pub fn load(upstream: &str, account: &AccountConfig) -> Result<Option<Credential>, String> {
        let where_ = format!("[routing.upstreams.{upstream}] account {}", account.name);
        match (&account.key_env, &account.key_file) {
            (Some(_), Some(_)) => Err(format!("{where_}: set key_env or key_file, not both")),
            (None, None) => Ok(None),
            (Some(var), None) => {
                let key = std::env::var(var).map_err(|_| {
                    format!("{where_}: environment variable {var} is not set (or not UTF-8); export it to the agent or use key_file")
                })?;
                Credential::new(key.trim(), format!("env {var}"), &where_).map(Some)
            }
            (None, Some(path)) => {
                let key = std::fs::read_to_string(path).map_err(|e| {
                    format!(
                        "{where_}: cannot read key_file {}: {e}; create it (mode 0600, owned by root)",
                        path.display()
                    )
                })?;
                Credential::new(key.trim(), format!("file {}", path.display()), &where_).map(Some)
            }
        }
    }

    fn new(key: &str, source: String, where_: &str) -> Result<Credential, String> {
        if key.is_empty() {
            return Err(format!("{where_}: the key from {source} is empty"));
        }
        // It goes into a header value: control characters would be refused
        // there (or split a header), so refuse them here with a clear message.
        if key.bytes().any(|b| b.is_ascii_control() || !b.is_ascii()) {
            return Err(format!(
                "{where_}: the key from {source} has characters an HTTP header cannot carry"
            ));
        }
        Ok(Credential {
            key: key.into(),
            source,
        })
    }

    #[cfg(test)]
    pub fn for_test(key: &str) -> Credential {
        Credential {
            key: key.into(),
            source: "test".into(),
        }
    }

    /// The key itself, for the one place that puts it in a header.
    pub(crate) fn expose(&self) -> &str {
        &self.key
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential({})", self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(env: Option<&str>, file: Option<PathBuf>) -> AccountConfig {
        AccountConfig {
            name: "main".into(),
            key_env: env.map(str::to_string),
            key_file: file,
        }
    }
    use std::path::PathBuf;

    #[test]
    fn a_key_file_is_read_once_trimmed_and_never_shown_in_debug_output() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, "sk-live-abc123\n").unwrap();
        let c = Credential::load("up", &account(None, Some(path))).unwrap().unwrap();
        assert_eq!(c.expose(), "sk-live-abc123");
        let shown = format!("{c:?}");
        assert!(!shown.contains("abc123") && shown.contains("file"), "{shown}");
    }

    #[test]
    fn a_missing_variable_is_an_error_naming_the_variable_and_the_fix() {
        let e = Credential::load("up", &account(Some("PROMPTWALL_TEST_SURELY_UNSET"), None)).unwrap_err();
        assert!(
            e.contains("PROMPTWALL_TEST_SURELY_UNSET") && e.contains("export"),
            "{e}"
        );
    }

    #[test]
    fn a_key_with_a_newline_inside_is_refused_without_echoing_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, "sk-abc\r\nx-evil: 1").unwrap();
        let e = Credential::load("up", &account(None, Some(path))).unwrap_err();
        assert!(e.contains("cannot carry") && !e.contains("sk-abc"), "{e}");
    }

    #[test]
    fn an_account_without_a_key_sends_none() {
        assert_eq!(Credential::load("up", &account(None, None)).unwrap(), None);
    }
}
