//! promptwall's proxy: listeners, TLS, HTTP forwarding and the glue that runs
//! every request through the inspection pipeline (`promptwall-llm`).

pub mod admission;
pub mod app;
pub mod attribution;
pub mod audit_sink;
pub mod audit_space;
pub mod body;
pub mod clock;
pub mod config;
pub mod containers;
pub mod detectors;
pub mod encoding;
pub mod exchange;
pub mod explicit;
pub mod fingerprint_key;
pub mod forward;
pub mod headers;
pub mod inspect;
pub mod observe;
pub mod origin;
pub mod passthrough;
pub mod peer;
pub mod pipeline;
pub mod quota;
pub mod routing;
pub mod server;
pub mod socket;
pub mod stages;
pub mod stats;
pub mod tokens;
pub mod transparent;
pub mod upstream;
pub mod websocket;
pub mod ws_session;
