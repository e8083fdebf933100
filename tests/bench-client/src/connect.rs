//! connect() cost: socket + connect + close, in batches, to a loopback port
//! nobody listens on. The cgroup/connect hooks run before the SYN leaves, so
//! a refused connect carries their full cost without depending on an
//! accept loop keeping up (a full accept queue stalls connects by ms).
//! Reports the per-connect time of each batch; median and best batch are
//! robust against the machine's noise.

use std::net::SocketAddr;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use socket2::{Domain, Socket, Type};

#[derive(clap::Args, Debug)]
pub struct ConnectArgs {
    /// A non-provider address with no listener (connects are refused).
    #[arg(long, default_value = "127.0.0.3:9")]
    pub addr: SocketAddr,
    #[arg(long, default_value_t = 5000)]
    pub per_batch: usize,
    #[arg(long, default_value_t = 7)]
    pub batches: usize,
}

pub fn run(args: ConnectArgs) -> Result<Value> {
    let addr = args.addr;
    let mut per_connect_ns: Vec<f64> = Vec::new();
    for _ in 0..args.batches {
        let start = Instant::now();
        for _ in 0..args.per_batch {
            let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
            match s.connect(&addr.into()) {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                Ok(()) => bail!("something listens on {addr}; pick a closed port"),
                Err(e) => return Err(e).with_context(|| format!("connect to {addr} failed unexpectedly")),
            }
        }
        per_connect_ns.push(start.elapsed().as_nanos() as f64 / args.per_batch as f64);
    }
    let mut sorted = per_connect_ns.clone();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Ok(json!({
        "addr": addr.to_string(),
        "per_connect_ns_median": sorted[sorted.len() / 2],
        "per_connect_ns_min": sorted[0],
        "batches_ns": per_connect_ns,
    }))
}
