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
