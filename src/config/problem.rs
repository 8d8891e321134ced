//! What is wrong with a configuration, said so it can be fixed: the file or environment variable, the
//! field, and the problem (with the line, for TOML syntax errors).

use std::fmt;
use std::path::Path;

/// One thing wrong with the configuration: where it comes from, which field, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// A file path, or the environment variable that set the field.
    pub source: String,
    /// Dotted field path, e.g. `server.port`.
    pub field: String,
    pub message: String,
}

impl Problem {
    pub fn new(source: impl Into<String>, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { source: source.into(), field: field.into(), message: message.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.source, self.field, self.message)
    }
}

/// The configuration cannot be used; every problem found is listed.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError(pub Vec<Problem>);

/// Parses a TOML config file; a syntax or shape error names `source` and the line.
pub fn parse_toml<T: serde::de::DeserializeOwned>(text: &str, source: &str) -> Result<T, Vec<Problem>> {
    toml::from_str(text).map_err(|e| {
        let field = toml_error_line(text, &e).map_or("(syntax)".to_owned(), |l| format!("(line {l})"));
        vec![Problem::new(source, field, e.message().to_owned())]
    })
}

/// The line a TOML parse error points at, for messages that name it.
pub(super) fn toml_error_line(text: &str, error: &toml::de::Error) -> Option<usize> {
    error.span().map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1)
}

/// A config file's text and how to name it: `config_dir/name`, or the compiled-in copy when the file is
/// absent (so the binary works without a config folder).
pub fn read_or_built_in(
    config_dir: &Path,
    name: &str,
    built_in: &'static str,
) -> Result<(String, String), Vec<Problem>> {
    let path = config_dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((text, path.display().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((built_in.to_owned(), format!("built-in {name}"))),
        Err(e) => Err(vec![Problem::new(path.display().to_string(), "(file)", format!("cannot read: {e}"))]),
    }
}

/// Turns a figment error (possibly several) into problems naming the file or variable that set the field.
pub(super) fn figment_problems(error: figment::Error) -> Vec<Problem> {
    error
        .into_iter()
        .map(|e| {
            let keys: Vec<&str> = e.path.iter().map(String::as_str).collect();
            let source = match &e.metadata {
                Some(meta) => match &meta.source {
                    Some(figment::Source::File(path)) => path.display().to_string(),
                    _ => env_var_for(&keys).unwrap_or_else(|| meta.name.to_string()),
                },
                None => "settings".into(),
            };
            let field = if e.path.is_empty() { "(root)".into() } else { e.path.join(".") };
            Problem::new(source, field, e.kind.to_string())
        })
        .collect()
}

/// The environment variable that set a field: the `PHILIA_` one (merged last, so it wins) when set,
/// else the conventional name.
fn env_var_for(path: &[&str]) -> Option<String> {
    let prefixed = format!("PHILIA_{}", path.join("__").to_ascii_uppercase());
    if std::env::var_os(&prefixed).is_some() {
        return Some(prefixed);
    }
    let field = path.join(".");
    super::CONVENTIONAL_ENV
        .iter()
        .find(|(name, f)| *f == field && std::env::var_os(name).is_some())
        .map(|(name, _)| (*name).to_owned())
}
