//! Certificates made at test time (rcgen): a CA and a server certificate for 127.0.0.1 and
//! localhost, written as PEM files to a temporary directory. No key is ever committed.

use std::path::PathBuf;

pub struct TestPki {
    pub dir: tempfile::TempDir,
    /// The CA's certificate (what a client trusts).
    pub ca: PathBuf,
    pub ca_pem: String,
    /// The server's certificate chain and key.
    pub cert: PathBuf,
    pub key: PathBuf,
    ca_cert: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

impl TestPki {
    /// A client certificate (for mutual TLS) the CA signed, as PEM files: (chain, key).
    pub fn client(&self, name: &str) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name.to_string());
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.ca_cert, &self.ca_key).unwrap();
        let cert_path = self.dir.path().join(format!("{name}-cert.pem"));
        let key_path = self.dir.path().join(format!("{name}-key.pem"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }

    /// The server certificate and key as observer/proxy TLS files.
    pub fn files(&self) -> sockscope::server::tls::TlsFiles {
        sockscope::server::tls::TlsFiles {
            cert: self.cert.clone(),
            key: self.key.clone(),
            client_ca: None,
        }
    }

    /// A rustls client trusting only this CA.
    pub fn client_config(&self) -> std::sync::Arc<rustls::ClientConfig> {
        sockscope_tap::tls::client_config(sockscope_tap::tls::ClientTls {
            ca: Some(&self.ca),
            ca_flag: "test CA",
            ..Default::default()
        })
        .unwrap()
    }
}

/// A CA named `name` and a server certificate it signed.
pub fn pki(name: &str) -> TestPki {
    let dir = tempfile::tempdir().unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("sockscope test CA {name}"),
    );
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let (cert_pem, key_pem) = server_cert(&ca, &ca_key);
    let write = |file: &str, text: &str| {
        let p = dir.path().join(file);
        std::fs::write(&p, text).unwrap();
        p
    };
    TestPki {
        ca: write("ca.pem", &ca.pem()),
        ca_pem: ca.pem(),
        cert: write("cert.pem", &cert_pem),
        key: write("key.pem", &key_pem),
        dir,
        ca_cert: ca,
        ca_key,
    }
}

fn server_cert(ca: &rcgen::Certificate, ca_key: &rcgen::KeyPair) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
    params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let cert = params.signed_by(&key, ca, ca_key).unwrap();
    (cert.pem(), key.serialize_pem())
}
