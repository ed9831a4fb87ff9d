//! The hub's own work per gateway call, no I/O: authentication, tenant scope, access decision
//! (quota and signing lookups included), outgoing headers with the HMAC signature, and the audit
//! record queued. Target: ≤ 4 µs. Run:
//! `cargo bench -p plexhub-server --features bench --bench per_request`.

#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use plexhub_server::bench::PerRequest;

fn per_request(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = std::env::temp_dir().join(format!("plexhub-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let hub = runtime.block_on(PerRequest::new(&dir));
    c.bench_function("gateway_call_own_work", |b| {
        b.iter(|| black_box(runtime.block_on(hub.run())));
    });
    drop(hub);
    let _ = std::fs::remove_dir_all(dir);
}

criterion_group!(benches, per_request);
criterion_main!(benches);
