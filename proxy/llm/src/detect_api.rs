//! The detection engine's types as the pipeline sees them.

pub use crate::detect::{fingerprint, Action, Category};
