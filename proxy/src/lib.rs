//! promptwall's proxy: listeners, TLS, HTTP forwarding and the glue that runs
//! every request through the inspection pipeline (`promptwall-llm`).

pub mod attribution;
pub mod config;
pub mod origin;
