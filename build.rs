//! Embeds the built dashboard into the `sockscope` binary when `SOCKSCOPE_EMBED_SITE` names its
//! directory (`scripts/build` does): every file under it, plus a gzip copy of each compressible
//! one, becomes a static served by `server::assets`. Without the variable nothing is embedded and
//! the observer serves `--site-root` (development, `cargo leptos watch`, tests).

use std::io::Write as _;
use std::path::{Path, PathBuf};

const ENV: &str = "SOCKSCOPE_EMBED_SITE";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed={ENV}");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let ssr = std::env::var_os("CARGO_FEATURE_SSR").is_some();
    let site = std::env::var_os(ENV)
        .filter(|s| !s.is_empty())
        .map(PathBuf::from);
    let mut code = String::from("&[\n");
    if let (true, Some(site)) = (ssr, site) {
        println!("cargo:rerun-if-changed={}", site.display());
        let site = site
            .canonicalize()
            .unwrap_or_else(|e| panic!("{ENV}={}: {e}", site.display()));
        assert!(
            site.join("pkg/sockscope.wasm").is_file() && site.join("pkg/sockscope.js").is_file(),
            "{ENV}={} has no pkg/sockscope.wasm and pkg/sockscope.js: build the dashboard first \
             (./scripts/build)",
            site.display()
        );
        let mut files = Vec::new();
        walk(&site, &mut files);
        files.sort();
        for file in files {
            let rel = file.strip_prefix(&site).expect("under the site");
            let url = format!("/{}", rel.to_string_lossy().replace('\\', "/"));
            if url.starts_with("/.") {
                continue; // build stamps
            }
            let body = std::fs::read(&file).expect("read a site file");
            let gzip = compressible(&url).then(|| {
                let gz = out.join(format!("site-{}.gz", hash(url.as_bytes())));
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                enc.write_all(&body).expect("gzip in memory");
                std::fs::write(&gz, enc.finish().expect("gzip in memory")).expect("write gzip");
                gz
            });
            code.push_str(&format!(
                "    Asset {{ path: {url:?}, body: include_bytes!({file:?}), gzip: {gzip}, etag: \"\\\"{etag:016x}\\\"\" }},\n",
                file = file.to_string_lossy(),
                gzip = match gzip {
                    Some(gz) => format!("Some(include_bytes!({:?}))", gz.to_string_lossy()),
                    None => "None".into(),
                },
                etag = hash(&body),
            ));
        }
    }
    code.push_str("]\n");
    std::fs::write(out.join("site_assets.rs"), code).expect("write site_assets.rs");
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read the site directory") {
        let path = entry.expect("read the site directory").path();
        if path.is_dir() {
            walk(&path, files);
        } else {
            files.push(path);
        }
    }
}

fn compressible(url: &str) -> bool {
    [
        ".wasm",
        ".js",
        ".css",
        ".svg",
        ".html",
        ".json",
        ".webmanifest",
        ".ico",
    ]
    .iter()
    .any(|ext| url.ends_with(ext))
}

/// FNV-1a: a stable content hash for ETags and file names.
fn hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
