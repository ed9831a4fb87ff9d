//! `pingora_proxy LISTEN UPSTREAM`: a tuned Pingora (crates.io `pingora` 0.9, feature `proxy`)
//! reverse proxy for bench/bare-proxy.sh, the counterpart of
//! crates/plexhub-server/examples/bare_proxy.rs. Every request goes to `http://UPSTREAM` with its
//! method, path, query, headers and body untouched; the upstream's status, headers and body come
//! back as they are. Client connections are HTTP/1.1 keep-alive (Pingora's default).
//!
//! Tuning (everything Pingora 0.9 exposes that matters for a plain HTTP/1 proxy):
//! - one worker thread (`threads`, from PINGORA_THREADS, else BENCH_WORKERS, else 1);
//! - upstream keep-alive pool sized for 256 connections (`upstream_keepalive_pool_size`, default
//!   128): with 256 client connections every upstream connection goes back to the pool;
//! - no cache, no modules, errors-only logging (no per-request log work), the
//!   upstream peer built once and cloned per request (no per-request address parsing), pooled
//!   upstream connections idle for up to 60 s;
//! - `max_retries` left at its default: Pingora only retries a request whose reused upstream
//!   connection failed, and 0 would make it never reach the upstream at all (0.9's retry loop);
//! - graceful shutdown off (grace period 0 s, timeout 1 s), so a stopped bench run frees its port;
//! - buffers: Pingora's HTTP/1 buffers are compile-time constants (4 KiB initial header buffer,
//!   64 KiB body chunks), which fit a JSON API response; kernel socket buffers are left to Linux's
//!   autotuning (setting SO_RCVBUF/SO_SNDBUF would switch it off); TCP_NODELAY is on both sides
//!   (Pingora sets it on accepted and on connected sockets).
use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;
use std::net::SocketAddr;

struct Proxy {
    peer: HttpPeer,
}

#[async_trait]
impl ProxyHttp for Proxy {
    type CTX = ();
    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(self.peer.clone()))
    }
}

fn main() {
    // Errors only, unless RUST_LOG says otherwise: nothing is logged per request.
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("error")).init();
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!("usage: pingora_proxy LISTEN UPSTREAM (e.g. 127.0.0.1:8080 127.0.0.1:9000)");
        std::process::exit(2);
    };
    let upstream: SocketAddr = upstream.parse().expect("UPSTREAM must be ip:port");
    let threads = ["PINGORA_THREADS", "BENCH_WORKERS"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse().ok())
        .unwrap_or(1);

    let conf = ServerConf {
        threads,
        upstream_keepalive_pool_size: 256,
        work_stealing: false,
        // Stopped between bench runs: exit at once rather than serve a 5-minute grace period.
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let mut peer = HttpPeer::new(upstream, false, String::new());
    peer.options.idle_timeout = Some(std::time::Duration::from_secs(60));
    let mut service = http_proxy_service(&server.configuration, Proxy { peer });
    service.add_tcp(&listen);
    server.add_service(service);
    server.run_forever();
}
