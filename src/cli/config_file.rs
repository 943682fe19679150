//! `--config FILE`: TOML settings for `serve` (`[serve]`) and `proxy` (`[proxy]`). A key is a
//! flag's long name (`max_connections` or `max-connections`); the file's values become the
//! flags' defaults, so the precedence is flag > environment > file > built-in default.

use clap::parser::ValueSource;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// The sections a file may have: the subcommands that read it.
pub(crate) const SECTIONS: &[&str] = &["serve", "proxy"];
/// Arguments that are not settings (and cannot be set from a file).
const NOT_SETTINGS: &[&str] = &["help", "version", "config"];

type Section = BTreeMap<Spanned<String>, Spanned<toml::Value>>;

/// A problem with a config file, naming the file, line and key.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// A parsed config file.
pub(crate) struct ConfigFile {
    path: PathBuf,
    text: String,
    sections: BTreeMap<Spanned<String>, Spanned<Section>>,
}

impl ConfigFile {
    pub(crate) fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            line: 0,
            message: format!("cannot read the config file: {e}"),
        })?;
        Self::parse(path, text)
    }

    pub(crate) fn parse(path: &Path, text: String) -> Result<ConfigFile, ConfigError> {
        let mut file = ConfigFile {
            path: path.to_path_buf(),
            text,
            sections: BTreeMap::new(),
        };
        file.sections = toml::from_str(&file.text).map_err(|e| {
            let line = e.span().map_or(0, |s| file.line(s.start));
            file.error(
                line,
                format!(
                    "{} (settings go in tables: {})",
                    e.message().trim_end(),
                    SECTIONS
                        .iter()
                        .map(|s| format!("[{s}]"))
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
            )
        })?;
        for name in file.sections.keys() {
            if !SECTIONS.contains(&name.get_ref().as_str()) {
                return Err(file.error(
                    file.line(name.span().start),
                    format!(
                        "unknown table [{}]: the tables are {}",
                        name.get_ref(),
                        SECTIONS.join(", ")
                    ),
                ));
            }
        }
        Ok(file)
    }

    /// The sections present in the file.
    pub(crate) fn section_names(&self) -> impl Iterator<Item = &str> {
        self.sections.keys().map(|k| k.get_ref().as_str())
    }

    fn line(&self, offset: usize) -> usize {
        1 + self.text.as_bytes()[..offset.min(self.text.len())]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
    }

    fn error(&self, line: usize, message: String) -> ConfigError {
        ConfigError {
            file: self.path.display().to_string(),
            line,
            message,
        }
    }

    /// Validates `[section]` against the subcommand `section` of `cli` and makes every value
    /// the default of its flag. Refuses unknown keys, wrong types and values the flag's own
    /// parser refuses, naming the line.
    pub(crate) fn apply(
        &self,
        cli: clap::Command,
        section: &str,
        subcommand: &str,
    ) -> Result<clap::Command, ConfigError> {
        let Some(table) = self.sections.get(section) else {
            return Ok(cli);
        };
        // Not built: building first would break the changed command (clap re-indexes args).
        let sub = cli
            .find_subcommand(subcommand)
            .expect("a config section names a subcommand")
            .clone();
        let mut defaults: Vec<(String, Vec<String>)> = Vec::new();
        for (key, value) in table.get_ref() {
            let line = self.line(key.span().start);
            let long = key.get_ref().replace('_', "-");
            let arg = sub
                .get_arguments()
                .find(|a| a.get_long() == Some(long.as_str()))
                .filter(|a| !NOT_SETTINGS.contains(&a.get_id().as_str()))
                .ok_or_else(|| {
                    self.error(
                        line,
                        format!(
                            "unknown key `{}` in [{section}]{}; the keys are the long flags of \
                             `sockscope {section} --help`",
                            key.get_ref(),
                            nearest(&sub, &long)
                                .map(|n| format!(" (did you mean `{}`?)", n.replace('-', "_")))
                                .unwrap_or_default()
                        ),
                    )
                })?;
            let mut values = self.values(arg, key.get_ref(), value, line, section)?;
            // A relative path to a file (secrets) is read from the config file's directory.
            if arg
                .get_value_names()
                .is_some_and(|n| n.iter().any(|n| n == "FILE"))
            {
                let base = self.path.parent().unwrap_or(Path::new("."));
                for v in &mut values {
                    if Path::new(v).is_relative() {
                        *v = base.join(&*v).to_string_lossy().into_owned();
                    }
                }
            }
            // The flag's own parser judges each value, as if it had been typed.
            if arg.get_action().takes_values() {
                let probe = clap::Command::new(section.to_string())
                    .no_binary_name(true)
                    .arg(arg.clone().required(false).env(None::<&str>));
                for v in &values {
                    probe
                        .clone()
                        .try_get_matches_from([format!("--{long}={v}")])
                        .map_err(|e| {
                            let msg = e.to_string();
                            let first = msg
                                .lines()
                                .next()
                                .unwrap_or("")
                                .trim_start_matches("error: ");
                            self.error(
                                line,
                                format!(
                                    "bad value for `{}` in [{section}]: {first}",
                                    key.get_ref()
                                ),
                            )
                        })?;
                }
            }
            defaults.push((arg.get_id().to_string(), values));
        }
        Ok(cli.mut_subcommand(subcommand, move |mut sub| {
            for (id, values) in defaults {
                sub = sub.mut_arg(id, |a| a.required(false).default_values(values));
            }
            sub
        }))
    }

    /// The flag values a TOML value stands for, checking its type against the flag.
    fn values(
        &self,
        arg: &clap::Arg,
        key: &str,
        value: &Spanned<toml::Value>,
        line: usize,
        section: &str,
    ) -> Result<Vec<String>, ConfigError> {
        let takes_value = arg.get_action().takes_values();
        let many = matches!(arg.get_action(), clap::ArgAction::Append);
        let wrong = |expected: &str, got: &toml::Value| {
            self.error(
                line,
                format!(
                    "wrong type for `{key}` in [{section}]: expected {expected}, found {}",
                    got.type_str()
                ),
            )
        };
        let scalar = |v: &toml::Value| -> Result<String, ConfigError> {
            match v {
                toml::Value::String(s) => Ok(s.clone()),
                toml::Value::Integer(i) => Ok(i.to_string()),
                toml::Value::Float(f) => Ok(f.to_string()),
                other => Err(wrong("a string or a number", other)),
            }
        };
        match value.get_ref() {
            toml::Value::Boolean(b) if !takes_value => Ok(vec![b.to_string()]),
            other if !takes_value => Err(wrong("true or false", other)),
            toml::Value::Array(items) if many => items.iter().map(scalar).collect(),
            toml::Value::Array(_) => Err(wrong("one value, not a list", value.get_ref())),
            other => scalar(other).map(|s| vec![s]),
        }
    }

    /// The effective settings of `section` as TOML: every flag with its value after flags,
    /// environment, this file and defaults, and where it came from. Secrets show as `***`.
    pub(crate) fn effective(
        &self,
        cli: clap::Command,
        section: &str,
    ) -> Result<String, ConfigError> {
        // The flags in `--help` order (applying the file moves the ones it sets to the end).
        let order: Vec<clap::Id> = cli
            .find_subcommand(section)
            .expect("a config section names a subcommand")
            .get_arguments()
            .map(|a| a.get_id().clone())
            .collect();
        let cli = self.apply(cli, section, section)?;
        let sub = cli
            .find_subcommand(section)
            .expect("a config section names a subcommand")
            .clone();
        let matches = sub
            .clone()
            .no_binary_name(true)
            .try_get_matches_from(Vec::<String>::new())
            .map_err(|e| {
                let msg = e.to_string();
                self.error(
                    0,
                    format!(
                        "[{section}]: {}",
                        msg.lines()
                            .next()
                            .unwrap_or("")
                            .trim_start_matches("error: ")
                    ),
                )
            })?;
        let from_file = |id: &str| {
            self.sections.get(section).and_then(|t| {
                t.get_ref()
                    .keys()
                    .find(|k| k.get_ref().replace('_', "-") == id_long(&sub, id))
                    .map(|k| self.line(k.span().start))
            })
        };
        let mut out = format!("[{section}]\n");
        for id in &order {
            let Some(arg) = sub.get_arguments().find(|a| a.get_id() == id) else {
                continue;
            };
            let id = id.as_str();
            if NOT_SETTINGS.contains(&id) || arg.get_long().is_none() {
                continue;
            }
            let key = arg.get_long().unwrap_or(id).replace('-', "_");
            let raw: Vec<String> = matches
                .get_raw(id)
                .map(|vs| vs.map(|v| v.to_string_lossy().into_owned()).collect())
                .unwrap_or_default();
            if raw.is_empty() {
                let _ = writeln!(out, "# {key}: not set");
                continue;
            }
            let secret = arg.is_hide_env_values_set();
            let shown = if secret {
                format!("{key} = \"***\"")
            } else if matches!(arg.get_action(), clap::ArgAction::SetTrue) {
                // What the switch came to, however the environment spelled it ("1", "yes").
                format!("{key} = {}", matches.get_flag(id))
            } else if matches!(arg.get_action(), clap::ArgAction::Append) {
                format!(
                    "{key} = [{}]",
                    raw.iter()
                        .map(|v| toml_scalar(v))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else {
                format!("{key} = {}", toml_scalar(&raw[0]))
            };
            let source = match matches.value_source(id) {
                Some(ValueSource::CommandLine) => "flag".to_string(),
                Some(ValueSource::EnvVariable) => format!(
                    "environment {}",
                    arg.get_env()
                        .map(|e| e.to_string_lossy())
                        .unwrap_or_default()
                ),
                _ => match from_file(id) {
                    Some(line) => format!("{}:{line}", self.path.display()),
                    None => "default".to_string(),
                },
            };
            let _ = writeln!(out, "{shown}  # {source}");
        }
        Ok(out)
    }
}

fn id_long(sub: &clap::Command, id: &str) -> String {
    sub.get_arguments()
        .find(|a| a.get_id() == id)
        .and_then(|a| a.get_long())
        .unwrap_or(id)
        .to_string()
}

/// A value as TOML: numbers and booleans bare, everything else a quoted string.
fn toml_scalar(v: &str) -> String {
    if v == "true" || v == "false" || v.parse::<i64>().is_ok() {
        v.to_string()
    } else {
        toml::Value::String(v.to_string()).to_string()
    }
}

/// The flag of `sub` closest to a misspelt key.
fn nearest(sub: &clap::Command, key: &str) -> Option<String> {
    sub.get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|l| !NOT_SETTINGS.contains(l))
        .map(|l| (strsim::levenshtein(l, key), l))
        .filter(|(d, l)| *d <= 3.max(l.len() / 4))
        .min()
        .map(|(_, l)| l.to_string())
}
