//! promptwall's proxy: listeners, TLS, HTTP forwarding and the glue that runs
//! every request through the inspection pipeline (`promptwall-llm`).

pub mod attribution;
pub mod audit_sink;
pub mod body;
pub mod config;
pub mod forward;
pub mod inspect;
pub mod origin;
pub mod passthrough;
pub mod pipeline;
pub mod socket;
pub mod stats;
pub mod upstream;
pub mod app;
pub mod explicit;
pub mod server;
pub mod transparent;
pub mod websocket;
pub mod peer;
pub mod detectors;
