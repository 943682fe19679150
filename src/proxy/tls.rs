//! TLS on the proxy's two sides: clients reach it over `https://`/`wss://` (`--tls-cert`,
//! `--tls-key`; the observer's listener, with its reload), and it dials an `https://`
//! upstream (`--upstream https://…`, trusting the system's roots or `--upstream-ca`). One
//! [`Stream`] type carries either kind of socket through the upgrade to the relay.

use rustls::pki_types::ServerName;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// How the proxy reaches its upstream.
#[derive(Clone, Debug)]
pub struct UpstreamTls {
    pub config: Arc<rustls::ClientConfig>,
    /// The name checked against the upstream's certificate (and sent as SNI).
    pub server_name: ServerName<'static>,
}

impl UpstreamTls {
    /// The TLS client for `authority` (`host:port`), trusting `ca` or the system's roots.
    pub fn new(authority: &str, ca: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let host = host_of(authority);
        let server_name = ServerName::try_from(host.to_string()).map_err(|_| {
            anyhow::anyhow!(
                "--upstream host {host:?} is not a DNS name or IP address a certificate can name"
            )
        })?;
        let config = sockscope_tap::tls::client_config(sockscope_tap::tls::ClientTls {
            ca,
            ca_flag: "--upstream-ca",
            ..Default::default()
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(UpstreamTls {
            config,
            server_name,
        })
    }

    /// Opens TLS over `tcp`.
    pub(crate) async fn connect(
        &self,
        tcp: TcpStream,
    ) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(self.server_name.clone(), tcp)
            .await
    }
}

/// `host` of `host:port` (`[v6]:port` too).
fn host_of(authority: &str) -> &str {
    let host = match authority.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    };
    host.trim_start_matches('[').trim_end_matches(']')
}

/// A relayed socket: plain TCP (relayed by readiness, no buffer while idle) or TLS.
pub(crate) enum Stream {
    Tcp(TcpStream),
    Client(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    Server(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Stream::Tcp($s) => $e,
            Stream::Client($s) => $e,
            Stream::Server($s) => $e,
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn the_host_of_an_authority() {
        assert_eq!(host_of("example.com:443"), "example.com");
        assert_eq!(host_of("127.0.0.1:8443"), "127.0.0.1");
        assert_eq!(host_of("[::1]:8443"), "::1");
        assert_eq!(host_of("example.com"), "example.com");
    }
}
