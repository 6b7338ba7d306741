//! Data-driven engine tests: every directory under `fixtures/cases/` is one
//! composite. Its member files (`blue.yaml`, `yellow.json`, …; the member name
//! is the file stem, `default` is the default group) are merged through the
//! library, and the JSON report must equal `expected.json` byte for byte.
//! When the report's state is OK, the merged snapshot must be valid JSON and,
//! if the case has an `expected-snapshot.json`, equal it byte for byte: that
//! file is Kong's declarative form (what data planes load); a case may also
//! pin the decK form (`?format=deck`) in `expected-snapshot-deck.json`.
//!
//! `UPDATE_EXPECT=1 cargo test --test engine cases::` rewrites the expectations
//! (`expected-snapshot.json` only where it already exists): review the diff.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::common::expect::expect_file;
use rgmerge::batch;
use rgmerge::compose::Form;
use rgmerge::config::{Edition, KongTarget, PluginSet};
use rgmerge::intern::Interner;
use rgmerge::report::State;

fn cases_root() -> PathBuf {
    crate::common::fixtures().join("cases")
}

/// The member files of a case: every `*.yaml|*.yml|*.json` except the expectations.
fn member_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            let ext = p
                .extension()
                .map(|e| e.to_string_lossy().to_ascii_lowercase());
            !name.starts_with("expected") && matches!(ext.as_deref(), Some("yaml" | "yml" | "json"))
        })
        .collect();
    files.sort();
    files
}

/// The data planes a case is checked for: `target.txt` (`edition=oss`,
/// `plugins=bundled,my-plugin`, one a line), else the default (Enterprise,
/// bundled plugins).
fn target(dir: &Path) -> KongTarget {
    let mut t = KongTarget::default();
    let Ok(text) = std::fs::read_to_string(dir.join("target.txt")) else {
        return t;
    };
    for line in text.lines() {
        match line.split_once('=') {
            Some(("edition", v)) => t.edition = Edition::parse(v).unwrap(),
            Some(("plugins", v)) => t.plugins = PluginSet::parse(v).unwrap(),
            _ => {}
        }
    }
    t
}

/// One case: build the composite, compare report and (when OK) snapshot.
fn check(dir: &Path) -> Result<(), String> {
    let files = member_files(dir);
    if files.is_empty() {
        return Err(format!("{}: no member files", dir.display()));
    }
    let composite = batch::composite_for(&files, None, Arc::new(Interner::new()), &target(dir))
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let report = composite.report();
    let mut failures = Vec::new();
    if let Err(e) = expect_file(&dir.join("expected.json"), &(report.to_json() + "\n")) {
        failures.push(e);
    }
    if report.state != composite.state() {
        failures.push(format!(
            "{}: report state {:?} but composite state {:?}",
            dir.display(),
            report.state,
            composite.state()
        ));
    }
    if report.state == State::Ok {
        let deck = composite.assemble_form(Form::Deck).to_vec();
        if let Err(e) = serde_json::from_slice::<serde_json::Value>(&deck) {
            failures.push(format!("{}: decK snapshot is not JSON: {e}", dir.display()));
        }
        let snap = dir.join("expected-snapshot-deck.json");
        if snap.exists() {
            let text = String::from_utf8(deck).unwrap() + "\n";
            if let Err(e) = expect_file(&snap, &text) {
                failures.push(e);
            }
        }
        let body = composite.assemble_kong();
        let bytes = body.to_vec();
        assert_eq!(bytes.len(), body.len());
        match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Err(e) => failures.push(format!("{}: snapshot is not JSON: {e}", dir.display())),
            Ok(doc) if doc["_format_version"] != "3.0" => {
                failures.push(format!("{}: snapshot lacks _format_version", dir.display()))
            }
            Ok(_) => {}
        }
        let snap = dir.join("expected-snapshot.json");
        if snap.exists() {
            let text = String::from_utf8(bytes).unwrap() + "\n";
            if let Err(e) = expect_file(&snap, &text) {
                failures.push(e);
            }
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

fn case_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(cases_root())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn every_case() {
    let dirs = case_dirs();
    assert!(
        dirs.len() >= 50,
        "only {} case directories found",
        dirs.len()
    );
    let failures: Vec<String> = dirs.iter().filter_map(|d| check(d).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n\n")
    );
}

/// Every finding code of the README appears in some case's expectation, so
/// deleting the last case of a kind is noticed.
#[test]
fn cases_cover_every_finding_code() {
    let mut seen = std::collections::BTreeSet::new();
    for dir in case_dirs() {
        let Ok(text) = std::fs::read_to_string(dir.join("expected.json")) else {
            continue;
        };
        let report: serde_json::Value = serde_json::from_str(&text).unwrap();
        let none = Vec::new();
        for f in report["conflicts"]
            .as_array()
            .unwrap()
            .iter()
            .chain(report["errors"].as_array().unwrap())
            .chain(report["warnings"].as_array().unwrap_or(&none))
        {
            seen.insert(f["type"].as_str().unwrap().to_string());
        }
    }
    for code in [
        "duplicate_id",
        "duplicate_name",
        "duplicate_vault_prefix",
        "duplicate_global_plugin",
        "duplicate_credential",
        "unresolved_vault_reference",
        "parse_error",
        "schema_error",
        "duplicate_in_member",
        "unresolved_reference",
        "cross_member_reference",
        "app_registration_outside_default",
        "shared_acl_group",
        "overlapping_route",
    ] {
        assert!(seen.contains(code), "no case expects `{code}`");
    }
}

/// The same configs written in the other syntax (YAML ↔ JSON) give the same
/// report and the same snapshot bytes. Cases with parse errors are skipped:
/// their positions are syntax-specific by nature.
#[test]
fn yaml_and_json_give_the_same_report_and_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let mut compared = 0;
    for dir in case_dirs() {
        let files = member_files(&dir);
        let target = target(&dir);
        let Ok(original) = batch::composite_for(&files, None, Arc::new(Interner::new()), &target)
        else {
            continue;
        };
        let report = original.report();
        if report
            .errors
            .iter()
            .any(|e| e.kind == rgmerge::report::ErrorKind::ParseError)
        {
            continue;
        }
        let out = tmp.path().join(dir.file_name().unwrap());
        std::fs::create_dir_all(&out).unwrap();
        let mut converted = Vec::new();
        for f in &files {
            let bytes = std::fs::read(f).unwrap();
            let stem = f.file_stem().unwrap().to_string_lossy().to_string();
            let is_json = f.extension().unwrap() == "json";
            let value: serde_json::Value = if is_json {
                serde_json::from_slice(&bytes).unwrap()
            } else {
                // Read the YAML as the product does (YAML 1.2 scalars).
                rgmerge::config::parse(&bytes, rgmerge::config::Format::Yaml).unwrap()
            };
            let (name, text) = if is_json {
                (
                    format!("{stem}.yaml"),
                    serde_saphyr::to_string(&value).unwrap(),
                )
            } else {
                (
                    format!("{stem}.json"),
                    serde_json::to_string_pretty(&value).unwrap(),
                )
            };
            let path = out.join(name);
            std::fs::write(&path, text).unwrap();
            converted.push(path);
        }
        let other =
            batch::composite_for(&converted, None, Arc::new(Interner::new()), &target).unwrap();
        assert_eq!(
            other.report(),
            report,
            "{}: the report changes when YAML and JSON are swapped",
            dir.display()
        );
        assert_eq!(
            other.assemble(),
            original.assemble(),
            "{}: the snapshot changes when YAML and JSON are swapped",
            dir.display()
        );
        compared += 1;
    }
    assert!(compared >= 40, "only {compared} cases compared");
}
