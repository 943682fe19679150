//! HTTPS and WSS on the observer's port (`--tls-cert`, `--tls-key`): rustls with ring. Each
//! handshake runs on its own task (a slow client never holds up accepting); the certificate
//! is reloaded when its files change or on SIGHUP, without dropping connections; a client
//! speaking plain HTTP to the TLS port is told so in plain HTTP.

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

/// Longest a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the certificate files are checked for changes.
const RELOAD_CHECK: Duration = Duration::from_secs(2);
/// Handshaken connections waiting for the server to take them.
const READY_QUEUE: usize = 64;

/// The certificate chain and key files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA whose client certificates are checked when a client offers one (taps, `--tls-client-ca`);
    /// clients without one (browsers) are not asked.
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    fn modified(&self) -> Option<(SystemTime, SystemTime)> {
        let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        Some((m(&self.cert)?, m(&self.key)?))
    }
}

/// Reads and checks the files: errors name the file and what to do.
pub(crate) fn load(files: &TlsFiles) -> anyhow::Result<Arc<ServerConfig>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .with_context(|| format!("--tls-cert {}: cannot read it", files.cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("--tls-cert {}: not valid PEM", files.cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!(
            "--tls-cert {}: no certificate in it (expected PEM: -----BEGIN CERTIFICATE-----)",
            files.cert.display()
        );
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).with_context(|| {
        format!(
            "--tls-key {}: no private key in it (expected PEM: -----BEGIN PRIVATE KEY-----, RSA or EC)",
            files.key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS set-up")?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => builder.with_client_cert_verifier(client_verifier(ca, provider)?),
    };
    let mut config = builder.with_single_cert(certs, key).with_context(|| {
        format!(
            "--tls-cert {} and --tls-key {} do not make a usable pair",
            files.cert.display(),
            files.key.display()
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Checks client certificates against `ca` when offered; clients without one pass (the routes
/// decide what they may do).
fn client_verifier(
    ca: &Path,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> anyhow::Result<Arc<dyn rustls::server::danger::ClientCertVerifier>> {
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca)
        .with_context(|| format!("--tls-client-ca {}: cannot read it", ca.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("--tls-client-ca {}: not valid PEM", ca.display()))?;
    for c in certs {
        roots.add(c).with_context(|| {
            format!(
                "--tls-client-ca {}: not a usable CA certificate",
                ca.display()
            )
        })?;
    }
    anyhow::ensure!(
        !roots.is_empty(),
        "--tls-client-ca {}: no certificate in it (expected PEM: -----BEGIN CERTIFICATE-----)",
        ca.display()
    );
    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .allow_unauthenticated()
        .build()
        .with_context(|| format!("--tls-client-ca {}", ca.display()))
}

/// The client certificate of a connection, if it presented one the TLS layer verified: a
/// fingerprint (the first 8 bytes of the SHA-256 of its DER).
pub(crate) trait ClientCertified {
    fn client_cert(&self) -> Option<u64> {
        None
    }
}

impl ClientCertified for TcpStream {}

impl ClientCertified for TlsStream<TcpStream> {
    fn client_cert(&self) -> Option<u64> {
        // With a verifier, a certificate that is there was checked in the handshake.
        let leaf = self.get_ref().1.peer_certificates()?.first()?;
        let d = <sha2::Sha256 as sha2::Digest>::digest(leaf.as_ref());
        Some(u64::from_be_bytes(d[..8].try_into().expect("32 bytes")))
    }
}

/// The request extension with the connection's verified client certificate, if any.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClientCert {
    pub fingerprint: Option<u64>,
}

/// The observer's listener when TLS is on: yields connections whose handshake is done.
pub(crate) struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accepting task only ends with the runtime.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// Starts accepting on `tcp` with the certificate of `files` (already checked by [`load`]).
pub(crate) fn listen(tcp: TcpListener, files: TlsFiles, first: Arc<ServerConfig>) -> TlsListener {
    let local = tcp.local_addr().expect("a bound listener has an address");
    let current = Arc::new(RwLock::new(first));
    tokio::spawn(reload(files, current.clone()));
    let (tx, ready) = mpsc::channel(READY_QUEUE);
    tokio::spawn(async move {
        loop {
            let (stream, peer) = match tcp.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let config = match current.read() {
                Ok(c) => c.clone(),
                Err(poisoned) => poisoned.into_inner().clone(),
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Some(tls) = handshake(stream, peer, config).await {
                    let _ = tx.send((tls, peer)).await;
                }
            });
        }
    });
    TlsListener { ready, local }
}

async fn handshake(
    stream: TcpStream,
    peer: SocketAddr,
    config: Arc<ServerConfig>,
) -> Option<TlsStream<TcpStream>> {
    // A TLS client starts with a handshake record (0x16); anything else is told in plain text.
    let mut first = [0u8; 1];
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] != 0x16 => {
            plain_refusal(stream).await;
            return None;
        }
        Ok(Ok(1)) => {}
        _ => return None,
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}

async fn plain_refusal(mut stream: TcpStream) {
    let body = "this port speaks TLS: use https:// (or wss:// for taps)\n";
    let resp = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.write_all(resp.as_bytes())).await;
    let _ = stream.shutdown().await;
}

/// Reloads the certificate when its files change or on SIGHUP; a bad new pair is logged and
/// the old one kept.
async fn reload(files: TlsFiles, current: Arc<RwLock<Arc<ServerConfig>>>) {
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut seen = files.modified();
    let mut tick = tokio::time::interval(RELOAD_CHECK);
    loop {
        #[cfg(unix)]
        let signalled = async {
            match hup.as_mut() {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let signalled = std::future::pending::<()>();
        let forced = tokio::select! {
            _ = tick.tick() => false,
            _ = signalled => true,
        };
        let now = files.modified();
        if !forced && (now.is_none() || now == seen) {
            continue;
        }
        seen = now;
        match load(&files) {
            Ok(c) => {
                if let Ok(mut cur) = current.write() {
                    *cur = c;
                }
                tracing::info!(cert = %files.cert.display(), "TLS certificate reloaded");
            }
            Err(e) => tracing::warn!("TLS certificate not reloaded, the old one stays: {e:#}"),
        }
    }
}
