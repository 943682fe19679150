//! Helpers every command's settings share: value parsers, secrets read from files, and the
//! variable that names a config file.

use sockscope_wire::Secret;
use std::path::Path;

/// Environment variable naming the config file when `--config` is not given.
pub(crate) const CONFIG_ENV: &str = "SOCKSCOPE_CONFIG";

/// A value parser for counts and sizes: a whole number, at least `min`.
/// `wanted` client connections of `sockets_each` sockets, lowered (with a warning naming
/// `flag`) to what the open-file limit can hold with some to spare.
pub(crate) fn clamp_to_open_files(wanted: usize, sockets_each: u64, flag: &str) -> usize {
    let files = rlimit::getrlimit(rlimit::Resource::NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(1024);
    let fits = (files.saturating_sub(64) / sockets_each.max(1)).max(1) as usize;
    if fits < wanted {
        tracing::warn!(
            wanted,
            open_file_limit = files,
            "{flag} lowered to {fits}: the open-file limit holds no more (raise `ulimit -n`)"
        );
    }
    wanted.min(fits)
}

/// A duration flag: `250ms`, `30s`, `1h`.
pub(crate) fn duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (write e.g. 250ms, 30s, 1h)"))
}

pub(crate) fn at_least(min: u64) -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::new().range(min..)
}

/// Reads secrets from a file: one per line, blank lines and `#` comments skipped. Errors name
/// the flag and the file, never a secret.
pub(crate) fn read_secret_file(flag: &str, path: &Path) -> anyhow::Result<Vec<Secret>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("{flag} {}: cannot read it: {e}", path.display()))?;
    let secrets: Vec<Secret> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(Secret::from)
        .collect();
    anyhow::ensure!(
        !secrets.is_empty(),
        "{flag} {}: the file holds no secret (one per line)",
        path.display()
    );
    Ok(secrets)
}

/// Fills `slot` (a single-secret flag such as `--token`) from its `--…-file` twin: the file must
/// hold exactly one secret, and the flag and its file may not both be given.
pub(crate) fn read_single_secret(
    flag: &str,
    slot: &mut Option<Secret>,
    file: Option<&Path>,
) -> anyhow::Result<()> {
    let Some(path) = file else { return Ok(()) };
    anyhow::ensure!(slot.is_none(), "give {flag} or {flag}-file, not both");
    let mut lines = read_secret_file(&format!("{flag}-file"), path)?;
    anyhow::ensure!(
        lines.len() == 1,
        "{flag}-file {}: expected one secret, found {} lines",
        path.display(),
        lines.len()
    );
    *slot = lines.pop();
    Ok(())
}
