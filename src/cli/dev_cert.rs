//! `sockscope dev-cert`: a private CA and a server certificate it signed, as PEM files, for
//! trying TLS on a laptop or in tests (like mkcert, without touching any trust store). Not for
//! production: use your own CA or ACME there.

use anyhow::Context;
use std::path::{Path, PathBuf};

/// Flags of `sockscope dev-cert`.
#[derive(Clone, Debug, clap::Args)]
pub struct DevCertArgs {
    /// Directory to write ca.pem, cert.pem and key.pem into (made if missing; existing files
    /// are not overwritten).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Names the server certificate is for: DNS names or IP addresses (repeatable).
    #[arg(long = "name", value_delimiter = ',', default_values = ["localhost", "127.0.0.1", "::1"])]
    pub names: Vec<String>,
    /// Also write a client certificate for a tap (tap-cert.pem, tap-key.pem), for mutual TLS
    /// with `serve --tls-client-ca ca.pem`.
    #[arg(long)]
    pub tap: bool,
}

/// Writes the files; returns what it wrote, for the operator.
pub fn run(args: &DevCertArgs) -> anyhow::Result<String> {
    let names: Vec<String> = args
        .names
        .iter()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect();
    anyhow::ensure!(
        !names.is_empty(),
        "--name: give at least one DNS name or IP address"
    );
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("--dir {}: cannot create it", args.dir.display()))?;
    let mut files = vec!["ca.pem", "cert.pem", "key.pem"];
    if args.tap {
        files.extend(["tap-cert.pem", "tap-key.pem"]);
    }
    for f in &files {
        let p = args.dir.join(f);
        anyhow::ensure!(
            !p.exists(),
            "{} exists already: choose another --dir or remove it",
            p.display()
        );
    }
    let ca_key = rcgen::KeyPair::generate().context("key generation")?;
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "sockscope development CA");
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca = ca.self_signed(&ca_key)?;
    let mut server = rcgen::CertificateParams::new(Vec::<String>::new())?;
    for n in &names {
        let san = match n.parse::<std::net::IpAddr>() {
            Ok(ip) => rcgen::SanType::IpAddress(ip),
            Err(_) => rcgen::SanType::DnsName(
                n.clone()
                    .try_into()
                    .with_context(|| format!("--name {n:?} is not a DNS name or IP address"))?,
            ),
        };
        server.subject_alt_names.push(san);
    }
    server
        .distinguished_name
        .push(rcgen::DnType::CommonName, names[0].clone());
    let key = rcgen::KeyPair::generate()?;
    let cert = server.signed_by(&key, &ca, &ca_key)?;
    write(&args.dir, "ca.pem", &ca.pem())?;
    write(&args.dir, "cert.pem", &cert.pem())?;
    write(&args.dir, "key.pem", &key.serialize_pem())?;
    if args.tap {
        let mut tap = rcgen::CertificateParams::new(Vec::<String>::new())?;
        tap.distinguished_name
            .push(rcgen::DnType::CommonName, "sockscope tap");
        tap.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let tap_key = rcgen::KeyPair::generate()?;
        let tap_cert = tap.signed_by(&tap_key, &ca, &ca_key)?;
        write(&args.dir, "tap-cert.pem", &tap_cert.pem())?;
        write(&args.dir, "tap-key.pem", &tap_key.serialize_pem())?;
    }
    let d = args.dir.display();
    Ok(format!(
        "wrote {} in {d} (server certificate for {})\n\
         observer: sockscope serve --tls-cert {d}/cert.pem --tls-key {d}/key.pem\n\
         taps:     --observer wss://{}:3000/ingest --observer-ca {d}/ca.pem\n",
        files.join(", "),
        names.join(", "),
        names[0]
    ))
}

fn write(dir: &Path, name: &str, text: &str) -> anyhow::Result<()> {
    let p = dir.join(name);
    std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))?;
    #[cfg(unix)]
    if name.ends_with("key.pem") {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot make {} private", p.display()))?;
    }
    Ok(())
}
