//! What signing a forwarded request costs the gateway: one HMAC-SHA256 per active secret of the
//! target installation (the default), or one Ed25519 signature.
//! Run: `cargo bench -p plexhub-core --bench signing`.

#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use plexhub_core::signing::{
    HmacSigner, HubKey, SignedRequest, SigningSecret, TrustedKeys, verify, verify_any,
};

fn signing(c: &mut Criterion) {
    let key = HubKey::generate();
    let request = SignedRequest {
        method: "GET",
        path: "/contacts/42",
        query: "limit=10",
        tenant_id: "5f0c2a54-7d0e-4b7e-9f65-0c1f0c9d7e11",
        caller: "plugin-analytics",
        request_id: "9b2f0d1e-3c4a-4b5c-8d6e-7f8091a2b3c4",
        user_id: "",
        workspace_id: "",
    };
    let secrets = [SigningSecret::generate(), SigningSecret::generate()];
    let one = HmacSigner::new(&secrets[..1]).expect("a signer");
    let overlap = HmacSigner::new(&secrets).expect("a signer");
    c.bench_function("sign_request_hmac", |b| {
        b.iter(|| one.sign(black_box(&request), black_box(1_800_000_000_000)));
    });
    c.bench_function("sign_request_hmac_during_rotation", |b| {
        b.iter(|| overlap.sign(black_box(&request), black_box(1_800_000_000_000)));
    });
    let header = one.sign(&request, 1_800_000_000_000);
    let trusted = TrustedKeys {
        public_keys: Vec::new(),
        secrets: secrets[..1].to_vec(),
    };
    c.bench_function("verify_request_hmac", |b| {
        b.iter(|| {
            verify_any(
                &trusted,
                black_box(&header),
                &request,
                1_800_000_000_000,
                60_000,
            )
        });
    });
    c.bench_function("sign_request", |b| {
        b.iter(|| key.sign(black_box(&request), black_box(1_800_000_000_000)));
    });
    let header = key.sign(&request, 1_800_000_000_000);
    let keys = [key.public()];
    c.bench_function("verify_request", |b| {
        b.iter(|| {
            verify(
                &keys,
                black_box(&header),
                &request,
                1_800_000_000_000,
                60_000,
            )
        });
    });
}

criterion_group!(benches, signing);
criterion_main!(benches);
