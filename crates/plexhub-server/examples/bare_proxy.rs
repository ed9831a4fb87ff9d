//! The ceiling of the crate stack the gateway is built on: a reverse proxy made of hyper's
//! HTTP/1 server and hyper-util's pooled client and nothing else (no routing, authentication,
//! access checks, audit, metrics or signing). `bench/bare-proxy.sh` measures it against nginx
//! with the shared harness, so the gateway's numbers can be read against what hyper alone
//! reaches on the same machine.
//!
//! `bare_proxy LISTEN UPSTREAM` (e.g. `127.0.0.1:8080 127.0.0.1:18080`); `BARE_PROXY_THREADS`
//! (default 1: one current-thread event loop, like the hub with `--worker-threads 1`). It stops
//! on SIGTERM by returning from `main` (so an instrumented build writes its profile: `bench/pgo.sh`).

#![allow(clippy::expect_used, missing_docs)]

use std::convert::Infallible;

use axum::http::{Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

type Answer = Response<http_body_util::Either<Incoming, http_body_util::Empty<axum::body::Bytes>>>;

async fn forward(
    client: Client<HttpConnector, Incoming>,
    upstream: &str,
    request: Request<Incoming>,
) -> Result<Answer, Infallible> {
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
    let Ok(uri) = format!("http://{upstream}{path}").parse::<Uri>() else {
        return Ok(bad_gateway());
    };
    parts.uri = uri;
    parts.headers.remove(axum::http::header::HOST);
    match client.request(Request::from_parts(parts, body)).await {
        Ok(answer) => Ok(answer.map(http_body_util::Either::Left)),
        Err(_) => Ok(bad_gateway()),
    }
}

fn bad_gateway() -> Answer {
    let mut answer = Response::new(http_body_util::Either::Right(http_body_util::Empty::new()));
    *answer.status_mut() = StatusCode::BAD_GATEWAY;
    answer
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (listen, upstream) = (
        args.next().expect("usage: bare_proxy LISTEN UPSTREAM"),
        args.next().expect("usage: bare_proxy LISTEN UPSTREAM"),
    );
    let threads: usize = std::env::var("BARE_PROXY_THREADS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let mut runtime = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    };
    let runtime = runtime.enable_all().build().expect("a runtime");
    runtime.block_on(async move {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(1024)
            .build(connector);
        // The hub's listen backlog, so that a burst of connections meets the same queue.
        let listener = plexhub_server::listen(listen.parse().expect("a listen address"))
            .expect("the listen address");
        let upstream: &'static str = Box::leak(upstream.into_boxed_str());
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("a SIGTERM handler");
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = terminate.recv() => return,
            };
            let Ok((socket, _)) = accepted else {
                continue;
            };
            let _ = socket.set_nodelay(true);
            let client = client.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| forward(client.clone(), upstream, request));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(socket), service)
                    .await;
            });
        }
    });
}
