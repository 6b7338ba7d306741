//! `rgmerge serve --config rgmerge.toml` and `--print-config` (issue 25): a
//! daemon on the network has many settings, and operators keep them in a
//! file and in `RGMERGE_…` variables, as Kong has `kong.conf` and `KONG_…`.
//!
//! The file's settings are handed to clap as the environment variables it
//! already reads (only where the environment has none), so the order is the
//! one clap keeps: a flag, then the environment, then the file, then the
//! default. Keys are the flags without `--` (`max-connections` or
//! `max_connections`); an unknown key, or a list or table, is an error that
//! names the file and the key.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::parser::ValueSource;

/// The settings file named by `serve --config FILE` (or `RGMERGE_CONFIG`),
/// applied as environment variables. Returns the keys it set.
pub fn apply(cli: &clap::Command) -> Result<Vec<String>, String> {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).and_then(|a| a.to_str()) != Some("serve") {
        return Ok(Vec::new());
    }
    let Some(path) = config_path(&args[2..]) else {
        return Ok(Vec::new());
    };
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("--config {}: {e}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("--config {}: not TOML: {e}", path.display()))?;
    let serve = cli.find_subcommand("serve").ok_or("no serve command")?;
    let mut set = Vec::new();
    for (key, value) in table {
        let id = key.replace('-', "_");
        let Some(arg) = serve.get_arguments().find(|a| a.get_id().as_str() == id) else {
            return Err(format!(
                "--config {}: `{key}` is not a setting of rgmerge serve (see rgmerge serve --help)",
                path.display()
            ));
        };
        let Some(env) = arg.get_env() else {
            return Err(format!(
                "--config {}: `{key}` can only be given as a flag",
                path.display()
            ));
        };
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(format!(
                    "--config {}: `{key}` must be a string, number or boolean, not {}",
                    path.display(),
                    other.type_str()
                ));
            }
        };
        if std::env::var_os(env).is_none() {
            // SAFETY: called first thing in `main`, before any thread exists.
            unsafe { std::env::set_var(env, text) };
            set.push(id);
        }
    }
    Ok(set)
}

fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let a = a.to_str()?;
        if a == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(p) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(p));
        }
    }
    std::env::var_os("RGMERGE_CONFIG").map(PathBuf::from)
}

/// `--print-config`: every setting of `serve` as TOML, with where it came
/// from; passwords in URLs masked.
pub fn render(cli: &clap::Command, m: &clap::ArgMatches, from_file: &[String]) -> String {
    let mut out = String::from(
        "# rgmerge serve: the settings in force (flag > RGMERGE_… > --config file > default)\n",
    );
    let Some(serve) = cli.find_subcommand("serve") else {
        return out;
    };
    for arg in serve.get_arguments() {
        let id = arg.get_id().as_str();
        if matches!(id, "print_config" | "help" | "version") {
            continue;
        }
        let key = id.replace('_', "-");
        let values: Vec<String> = m
            .get_raw(id)
            .map(|v| v.map(|s| mask(&s.to_string_lossy())).collect())
            .unwrap_or_default();
        let source = match m.value_source(id) {
            Some(ValueSource::CommandLine) => "flag".to_string(),
            Some(ValueSource::EnvVariable) if from_file.iter().any(|k| k == id) => {
                "file".to_string()
            }
            Some(ValueSource::EnvVariable) => {
                arg.get_env().map_or("environment".to_string(), |e| {
                    e.to_string_lossy().into_owned()
                })
            }
            Some(ValueSource::DefaultValue) => "default".to_string(),
            _ => "unset".to_string(),
        };
        match values.as_slice() {
            [] => out.push_str(&format!("# {key} = (unset)\n")),
            [one] => out.push_str(&format!("{key} = {}  # {source}\n", toml_value(one))),
            many => out.push_str(&format!("{key} = {:?}  # {source}\n", many)),
        }
    }
    out
}

fn toml_value(v: &str) -> String {
    if v.parse::<i64>().is_ok() || v == "true" || v == "false" {
        v.to_string()
    } else {
        serde_json::Value::String(v.to_string()).to_string()
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:******@host/db`.
fn mask(v: &str) -> String {
    let Some((scheme, rest)) = v.split_once("://") else {
        return v.to_string();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return v.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:******@{host}"),
        None => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            mask("postgres://rg:s3cret@db/rg"),
            "postgres://rg:******@db/rg"
        );
        assert_eq!(mask("postgres://rg@db/rg"), "postgres://rg@db/rg");
        assert_eq!(mask("0.0.0.0:8443"), "0.0.0.0:8443");
    }
}
