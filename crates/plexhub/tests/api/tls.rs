//! Plugins served over https: the gateway speaks TLS with rustls, trusting the system's roots
//! and `--upstream-ca-file`, showing `--upstream-client-cert` to plugins that require one;
//! every certificate problem is 502 `UPSTREAM_TLS` with the reason, never plain HTTP instead.

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;

use axum::body::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
use reqwest::Method;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;

use crate::gateway::acme;
use crate::helpers::{Backend, Options, TestApp, spawn_with};

/// A certificate authority that issues leaf certificates.
struct Authority {
    certificate: rcgen::Certificate,
    issuer: rcgen::Issuer<'static, KeyPair>,
}

impl Authority {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("ca key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let certificate = params.self_signed(&key).expect("ca certificate");
        let issuer = rcgen::Issuer::new(params, key);
        Self {
            certificate,
            issuer,
        }
    }

    /// A leaf for `names` (IP addresses or DNS names): its PEM chain, its key, and both as DER.
    fn issue(&self, names: &[&str]) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("leaf params");
        for name in names {
            params.subject_alt_names.push(match name.parse() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName((*name).try_into().expect("dns name")),
            });
        }
        let certificate = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        Leaf {
            chain_pem: certificate.pem(),
            key_pem: key.serialize_pem(),
            der: certificate.der().clone(),
            key_der: key.serialize_der(),
        }
    }
}

struct Leaf {
    chain_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

/// An https plugin at 127.0.0.1 with `leaf`; with `clients`, it requires a client certificate
/// issued by that authority. Answers `{"tls": true, "path": …}`.
async fn https_plugin(leaf: &Leaf, clients: Option<&Authority>) -> String {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key_der.clone()));
    let builder = rustls::ServerConfig::builder_with_provider(Arc::new(
        #[allow(deprecated)]
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocols");
    let builder = match clients {
        Some(authority) => {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(authority.certificate.der().clone())
                .expect("client ca");
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                Arc::new(
                    #[allow(deprecated)]
                    rustls::crypto::ring::default_provider(),
                ),
            )
            .build()
            .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(vec![leaf.der.clone()], key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let service = service_fn(
                    |request: hyper::Request<hyper::body::Incoming>| async move {
                        let body = json!({ "tls": true, "path": request.uri().path() }).to_string();
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(body))))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    format!("https://127.0.0.1:{}", address.port())
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write pem");
    path
}

async fn hub_trusting(tls: plexhub_server::UpstreamTls) -> TestApp {
    let options = Options {
        upstream_tls: Some(tls),
        ..Options::default()
    };
    spawn_with(Backend::Sqlite, options).await.expect("hub")
}

async fn contacts(app: &TestApp, plugin_url: &str) -> crate::helpers::Reply {
    let (_, analytics) = acme(app, plugin_url).await;
    app.send(
        Method::GET,
        "/api/v1/proxy/crm.contacts/contacts",
        Some(&analytics),
        &[],
        None,
    )
    .await
}

#[tokio::test]
async fn https_plugins_are_reached_over_verified_tls_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let private_ca = Authority::new("plexhub test CA");
    let ca_file = write(dir.path(), "ca.pem", &private_ca.certificate.pem());
    let trusting = plexhub_server::UpstreamTls {
        ca_file: Some(ca_file.clone()),
        ..Default::default()
    };

    // A certificate of the private CA for 127.0.0.1: verified, forwarded, signed.
    let good = https_plugin(&private_ca.issue(&["127.0.0.1"]), None).await;
    let app = hub_trusting(trusting.clone()).await;
    let reply = contacts(&app, &good).await;
    assert_eq!(reply.assert_status(200)["tls"], true, "{}", reply.body);
    assert_eq!(reply.body["path"], "/contacts");

    // The system's roots alone do not know the private CA.
    let app = hub_trusting(plexhub_server::UpstreamTls::default()).await;
    let reply = contacts(&app, &good).await;
    reply.assert_error(502, "UPSTREAM_TLS");
    let message = reply.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("UnknownIssuer"), "{message}");

    // A certificate for another name.
    let elsewhere = https_plugin(&private_ca.issue(&["plugin.other.test"]), None).await;
    let app = hub_trusting(trusting.clone()).await;
    let reply = contacts(&app, &elsewhere).await;
    reply.assert_error(502, "UPSTREAM_TLS");
    let message = reply.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("not valid for name"), "{message}");

    // A plugin that requires a client certificate: refused without one, served with one.
    let clients = Authority::new("plexhub test client CA");
    let strict = https_plugin(&private_ca.issue(&["127.0.0.1"]), Some(&clients)).await;
    let app = hub_trusting(trusting.clone()).await;
    let reply = contacts(&app, &strict).await;
    reply.assert_error(502, "UPSTREAM_TLS");
    let client = clients.issue(&["plexhub.test"]);
    let app = hub_trusting(plexhub_server::UpstreamTls {
        client_cert: Some(write(dir.path(), "client.pem", &client.chain_pem)),
        client_key: Some(write(dir.path(), "client.key", &client.key_pem)),
        ..trusting
    })
    .await;
    let reply = contacts(&app, &strict).await;
    assert_eq!(reply.assert_status(200)["tls"], true, "{}", reply.body);
}

#[tokio::test]
async fn unusable_tls_settings_stop_the_hub_with_the_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    let not_pem = write(dir.path(), "ca.pem", "not a certificate");
    let missing = dir.path().join("missing.pem");
    for (tls, expected) in [
        (
            plexhub_server::UpstreamTls {
                ca_file: Some(not_pem.clone()),
                ..Default::default()
            },
            "no PEM certificate",
        ),
        (
            plexhub_server::UpstreamTls {
                ca_file: Some(missing),
                ..Default::default()
            },
            "missing.pem",
        ),
        (
            plexhub_server::UpstreamTls {
                client_cert: Some(not_pem),
                ..Default::default()
            },
            "go together",
        ),
    ] {
        let error = tls.client_config().expect_err("refused");
        assert!(error.to_string().contains(expected), "{error}");
    }
}
