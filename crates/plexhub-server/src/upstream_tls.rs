//! TLS to plugins served over https: rustls with the system's root certificates, a private CA
//! the operator adds, and an optional client certificate for plugins that require mutual TLS.
//! A base URL's scheme decides: `https` is TLS or nothing (never a fallback to plain HTTP).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

/// How the gateway trusts plugins served over https, and proves itself to them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamTls {
    /// PEM file of CA certificates trusted besides the system's roots (a private CA).
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain shown to plugins that ask for a client certificate.
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    pub client_key: Option<PathBuf>,
}

/// Why the TLS settings cannot be used (the hub does not start).
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// A file could not be read or holds no usable PEM item.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The settings do not fit together.
    #[error("{0}")]
    Invalid(String),
}

fn file_error(path: &Path, reason: impl std::fmt::Display) -> TlsSetupError {
    TlsSetupError::File {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|error| file_error(path, error))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| file_error(path, error))?;
    if certificates.is_empty() {
        return Err(file_error(path, "no PEM certificate in it"));
    }
    Ok(certificates)
}

impl UpstreamTls {
    /// The client side of TLS to plugins: the system's roots (those that load) and `ca_file`'s,
    /// with the client certificate when one is set.
    pub fn client_config(&self) -> Result<ClientConfig, TlsSetupError> {
        let mut roots = RootCertStore::empty();
        // A system store that fails to load (or holds a certificate rustls rejects) leaves the
        // other roots usable; a private CA given explicitly must load.
        let system = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(system.certs);
        if let Some(path) = &self.ca_file {
            for certificate in certificates(path)? {
                roots
                    .add(certificate)
                    .map_err(|error| file_error(path, error))?;
            }
        }
        // ring builds with a C compiler alone (aws-lc-rs, rustls' default, needs more of a
        // toolchain); rustls deprecates it only for lacking post-quantum key exchange.
        #[allow(deprecated)]
        let provider = rustls::crypto::ring::default_provider();
        let builder = ClientConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsSetupError::Invalid(error.to_string()))?
            .with_root_certificates(roots);
        match (&self.client_cert, &self.client_key) {
            (None, None) => Ok(builder.with_no_client_auth()),
            (Some(cert), Some(key)) => {
                let chain = certificates(cert)?;
                let key =
                    PrivateKeyDer::from_pem_file(key).map_err(|error| file_error(key, error))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|error| file_error(cert, error))
            }
            _ => Err(TlsSetupError::Invalid(
                "upstream_client_cert and upstream_client_key go together".to_owned(),
            )),
        }
    }
}

/// The TLS reason when `error` (a client error, with its causes) is a TLS failure: an unknown
/// issuer, a name that does not match, a client certificate the plugin required…
pub fn tls_failure(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    if let Some(tls) = error.downcast_ref::<rustls::Error>() {
        return Some(tls.to_string());
    }
    // An I/O error's `source` skips the error it wraps (tokio-rustls wraps rustls' errors, and
    // hyper-rustls wraps those again): look inside.
    if let Some(wrapped) = error
        .downcast_ref::<std::io::Error>()
        .and_then(std::io::Error::get_ref)
        && let Some(reason) = tls_failure(wrapped)
    {
        return Some(reason);
    }
    error.source().and_then(tls_failure)
}
