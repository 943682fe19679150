//! TLS to the observer (`wss://`): rustls with ring, trusting the system's roots, or only the
//! CA of [`crate::TapConfig::observer_ca`] (a private CA). Built once at start, so a missing or
//! bad CA file stops the tap with its name instead of failing every reconnect.

use crate::config::TapError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use std::path::Path;
use std::sync::Arc;

/// The client configuration for a `wss://` observer.
pub(crate) fn client_config(ca: Option<&Path>) -> Result<Arc<ClientConfig>, TapError> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| ca_error(path, &e.to_string()))?
                .collect::<Result<_, _>>()
                .map_err(|e| ca_error(path, &e.to_string()))?;
            if certs.is_empty() {
                return Err(ca_error(
                    path,
                    "no certificate in it (expected PEM: -----BEGIN CERTIFICATE-----)",
                ));
            }
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| ca_error(path, &format!("not a usable CA certificate: {e}")))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                // A system store may hold certificates rustls cannot parse: skip those.
                let _ = roots.add(c);
            }
            if roots.is_empty() {
                return Err(TapError::Config(
                    "no system CA certificates found for a wss:// observer; install ca-certificates or give the observer's CA (observer_ca / --observer-ca)".into(),
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TapError::Config(format!("TLS set-up: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn ca_error(path: &Path, why: &str) -> TapError {
    TapError::Config(format!("observer CA file {}: {why}", path.display()))
}
