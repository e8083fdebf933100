//! Builds the detector the pipeline scans with, from `[pipeline]` config.

use promptwall_llm::detect::Detector;

use crate::config::PipelineConfig;

pub fn build(policy: &PipelineConfig) -> Result<Detector, String> {
    Detector::new(policy).map_err(|e| e.to_string())
}
