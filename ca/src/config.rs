//! The `[ca]` section of the config file.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[ca]`: where the org CA lives and how its leaves are minted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CaConfig {
    pub dir: PathBuf,
    /// Name-constrain the generated root to the provider domains.
    pub name_constraints: bool,
    /// Leaf lifetime; leaves are re-minted well before they expire.
    pub leaf_validity_hours: u32,
}

impl Default for CaConfig {
    fn default() -> Self {
        Self {
            dir: "/var/lib/promptwall/ca".into(),
            name_constraints: true,
            leaf_validity_hours: 24,
        }
    }
}

impl CaConfig {
    /// Leaf lifetime as a duration; 0 hours counts as 1.
    pub fn leaf_validity(&self) -> Duration {
        Duration::from_secs(u64::from(self.leaf_validity_hours.max(1)) * 3600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_leaf_validity_counts_as_one_hour() {
        let c = CaConfig {
            leaf_validity_hours: 0,
            ..CaConfig::default()
        };
        assert_eq!(c.leaf_validity(), Duration::from_secs(3600));
        assert_eq!(CaConfig::default().leaf_validity(), Duration::from_secs(24 * 3600));
    }
}
