//! Member configs from files: the CLI's `validate`, `merge` and bundles.
//!
//! Each file is one member named by its file stem; a directory contributes
//! each `*.yaml`, `*.yml` and `*.json` in it. Files are read and members built
//! in parallel (rayon). I/O and usage problems are `BatchError`s (exit 2);
//! problems *in* a config are findings in the report (exit 1).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::compose::Composite;
use crate::config::{Format, KongTarget};
use crate::intern::Interner;
use crate::member::{Member, MemberInfo};
use crate::report::{Report, State};

/// What makes `validate` fail (exit 1): `--fail-on conflict` (the default:
/// conflicts or member errors) or `--fail-on warning` (also warnings, such
/// as `overlapping_route`, which never block a composite).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum FailOn {
    #[default]
    Conflict,
    Warning,
}

impl FailOn {
    /// `conflict` (or `error`) and `warning`, as `--fail-on` spells them.
    pub fn parse(s: &str) -> Result<FailOn, String> {
        match s {
            "conflict" | "error" => Ok(FailOn::Conflict),
            "warning" => Ok(FailOn::Warning),
            other => Err(format!(
                "unknown --fail-on value `{other}`: expected `conflict` or `warning`"
            )),
        }
    }

    /// Whether a report fails validation.
    pub fn fails(self, report: &Report) -> bool {
        report.state != State::Ok || (self == FailOn::Warning && !report.warnings.is_empty())
    }

    /// `validate`'s exit code for a report: 0 or 1 (2 is for usage and I/O).
    pub fn exit_code(self, report: &Report) -> i32 {
        i32::from(self.fails(report))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BatchError + '_ {
    move |source| BatchError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One input file and the member name it gives.
#[derive(Clone, Debug)]
pub struct MemberFile {
    pub name: String,
    pub path: PathBuf,
}

fn is_config_file(p: &Path) -> bool {
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("yaml" | "yml" | "json")
    )
}

/// Expands directories and names each member by its file stem.
pub fn collect(inputs: &[PathBuf]) -> Result<Vec<MemberFile>, BatchError> {
    let mut files = Vec::new();
    for input in inputs {
        let meta = std::fs::metadata(input).map_err(io(input))?;
        if meta.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(input)
                .map_err(io(input))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && is_config_file(p))
                .collect();
            entries.sort();
            files.extend(entries);
        } else {
            files.push(input.clone());
        }
    }
    if files.is_empty() {
        return Err(BatchError::Usage(
            "no member config files given (expected *.yaml, *.yml or *.json)".into(),
        ));
    }
    let mut out: Vec<MemberFile> = Vec::with_capacity(files.len());
    for path in files {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or_else(|| {
                BatchError::Usage(format!("{}: file name is not valid UTF-8", path.display()))
            })?
            .to_string();
        if let Some(other) = out.iter().find(|f| f.name == name) {
            return Err(BatchError::Usage(format!(
                "{} and {} would both be member '{name}': member names come from file stems and must differ",
                other.path.display(),
                path.display()
            )));
        }
        out.push(MemberFile { name, path });
    }
    Ok(out)
}

/// Reads and builds every member, in parallel, for the default data planes.
pub fn load(files: &[MemberFile], interner: &Interner) -> Result<Vec<Arc<Member>>, BatchError> {
    load_for(files, None, interner, &KongTarget::default())
}

/// Whether two paths name the same file (compared as given when either
/// can't be resolved).
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// [`load`] for the given data planes (`--kong-edition`, `--plugins`). The
/// default group is the file `default` names when given (a bundle
/// manifest's `default_member`), else the member named `default`.
pub fn load_for(
    files: &[MemberFile],
    default: Option<&Path>,
    interner: &Interner,
    target: &KongTarget,
) -> Result<Vec<Arc<Member>>, BatchError> {
    files
        .par_iter()
        .map(|f| {
            let bytes = std::fs::read(&f.path).map_err(io(&f.path))?;
            let info = MemberInfo {
                id: f.name.clone(),
                name: f.name.clone(),
                is_default: match default {
                    Some(d) => same_file(&f.path, d),
                    None => f.name == "default",
                },
            };
            let format = Format::from_path(&f.path, &bytes);
            let model = crate::config::read_member_in(&bytes, format, target, interner);
            // The file's bytes are not needed past the read: for a big file,
            // the member is then built in the memory they held.
            drop(bytes);
            Ok(Arc::new(Member::from_model(info, model, interner)))
        })
        .collect()
}

/// Builds one composite of the given files and directories.
pub fn composite(inputs: &[PathBuf], interner: Arc<Interner>) -> Result<Composite, BatchError> {
    composite_for(inputs, None, interner, &KongTarget::default())
}

/// [`composite`] for the given data planes, with the default group given
/// by its file (see [`load_for`]).
pub fn composite_for(
    inputs: &[PathBuf],
    default: Option<&Path>,
    interner: Arc<Interner>,
    target: &KongTarget,
) -> Result<Composite, BatchError> {
    let files = collect(inputs)?;
    let members = load_for(&files, default, &interner, target)?;
    Ok(Composite::from_members(interner, members))
}

/// A bundle manifest: many composites, each a list of member files or
/// directories relative to the manifest. `rgmerge export` writes one.
/// `default_member` names the default group's file; without it, a member
/// named `default` (by its file stem) is the default group.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_member: Option<PathBuf>,
    pub composites: Vec<BundleComposite>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BundleComposite {
    pub name: String,
    pub members: Vec<PathBuf>,
}

impl Bundle {
    /// Reads a manifest (YAML or JSON) and resolves member paths against its folder.
    pub fn read(manifest: &Path) -> Result<Bundle, BatchError> {
        let bytes = std::fs::read(manifest).map_err(io(manifest))?;
        let value =
            crate::config::parse(&bytes, Format::from_path(manifest, &bytes)).map_err(|f| {
                BatchError::Usage(format!(
                    "{}:{}:{}: {}",
                    manifest.display(),
                    f.line.unwrap_or(0),
                    f.column.unwrap_or(0),
                    f.message
                ))
            })?;
        let mut bundle: Bundle = serde_json::from_value(value)
            .map_err(|e| BatchError::Usage(format!("{}: not a bundle manifest: {e} (expected `composites: [{{name, members: [paths]}}]`)", manifest.display())))?;
        let base = manifest.parent().unwrap_or(Path::new("."));
        if let Some(d) = &mut bundle.default_member
            && d.is_relative()
        {
            *d = base.join(&*d);
        }
        for c in &mut bundle.composites {
            if c.members.is_empty() {
                return Err(BatchError::Usage(format!(
                    "{}: composite '{}' lists no members",
                    manifest.display(),
                    c.name
                )));
            }
            for m in &mut c.members {
                if m.is_relative() {
                    *m = base.join(&*m);
                }
            }
        }
        Ok(bundle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Warning, WarningKind};

    #[test]
    fn fail_on_warning_fails_only_with_warnings() {
        let ok = Report::new(Vec::new(), Vec::new(), Vec::new());
        let warned = ok.clone().with_advice(
            vec![Warning {
                kind: WarningKind::OverlappingRoute,
                entity: "routes".into(),
                value: String::new(),
                members: vec!["a".into(), "b".into()],
                paths: Default::default(),
                message: String::new(),
            }],
            Vec::new(),
        );
        assert_eq!(FailOn::parse("warning"), Ok(FailOn::Warning));
        assert_eq!(FailOn::parse("conflict"), Ok(FailOn::Conflict));
        assert!(FailOn::parse("never").is_err());
        assert_eq!(FailOn::default().exit_code(&warned), 0);
        assert_eq!(FailOn::Warning.exit_code(&warned), 1);
        assert_eq!(FailOn::Warning.exit_code(&ok), 0);
    }
}
