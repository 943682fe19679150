//! TLS client settings: rustls with ring, trusting the system's roots or only a given CA (a
//! private one), optionally presenting a client certificate (mutual TLS). Used for the tap's
//! `wss://` link to the observer and by `sockscope proxy` for an `https://` upstream. Built
//! once at start, so a missing or bad file stops with its name instead of failing every
//! reconnect.

use crate::config::TapError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use std::path::Path;
use std::sync::Arc;

/// Files of a TLS client.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientTls<'a> {
    /// PEM file of the CA to trust instead of the system's roots.
    pub ca: Option<&'a Path>,
    /// PEM certificate chain and key presented to the server (mutual TLS).
    pub identity: Option<(&'a Path, &'a Path)>,
    /// What the files are called where the user set them, for errors (e.g. `--observer-ca`).
    pub ca_flag: &'a str,
    pub identity_flags: (&'a str, &'a str),
}

/// The client configuration for `files`; errors name the file, the flag and what to do.
pub fn client_config(files: ClientTls<'_>) -> Result<Arc<ClientConfig>, TapError> {
    let mut roots = RootCertStore::empty();
    match files.ca {
        Some(path) => {
            let certs = read_certs(path, files.ca_flag)?;
            for c in certs {
                roots.add(c).map_err(|e| {
                    file_error(
                        files.ca_flag,
                        path,
                        &format!("not a usable CA certificate: {e}"),
                    )
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                // A system store may hold certificates rustls cannot parse: skip those.
                let _ = roots.add(c);
            }
            if roots.is_empty() {
                return Err(TapError::Config(format!(
                    "no system CA certificates found; install ca-certificates or give the CA with {}",
                    files.ca_flag
                )));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TapError::Config(format!("TLS set-up: {e}")))?
        .with_root_certificates(roots);
    let config = match files.identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let (cert_flag, key_flag) = files.identity_flags;
            let chain = read_certs(cert, cert_flag)?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                file_error(
                    key_flag,
                    key,
                    &format!("no private key in it ({e}; expected PEM: -----BEGIN PRIVATE KEY-----, RSA or EC)"),
                )
            })?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                TapError::Config(format!(
                    "{cert_flag} {} and {key_flag} do not make a usable pair: {e}",
                    cert.display()
                ))
            })?
        }
    };
    Ok(Arc::new(config))
}

fn read_certs(path: &Path, flag: &str) -> Result<Vec<CertificateDer<'static>>, TapError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(flag, path, &e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(flag, path, &e.to_string()))?;
    if certs.is_empty() {
        return Err(file_error(
            flag,
            path,
            "no certificate in it (expected PEM: -----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(certs)
}

fn file_error(flag: &str, path: &Path, why: &str) -> TapError {
    TapError::Config(format!("{flag} {}: {why}", path.display()))
}
