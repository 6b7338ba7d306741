//! The architecture's layering, checked as rust-analyzer's tidy tests check
//! theirs: every `crate::…` path in `src/` must be one its module may use,
//! per the table in ARCHITECTURE.md (the single source); no module may name
//! what the table says it must never see; and no two sibling files import
//! each other, directly or in a longer circle. Test code (`#[cfg(test)]`)
//! and comments are not checked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

struct Rule {
    may_use: BTreeSet<String>,
    never: Vec<String>,
}

/// The rows between `<!-- layers:begin -->` and `<!-- layers:end -->`.
fn rules() -> BTreeMap<String, Rule> {
    let doc = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let start = doc
        .find("<!-- layers:begin -->")
        .expect("layers table start");
    let end = doc.find("<!-- layers:end -->").expect("layers table end");
    let mut out = BTreeMap::new();
    for line in doc[start..end].lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if cells.len() < 3 || cells[0] == "module" || cells[0].starts_with("---") {
            continue;
        }
        let list = |s: &str| -> Vec<String> {
            s.split(',')
                .map(|x| x.trim().trim_matches('`').to_string())
                .filter(|x| !x.is_empty() && x != "—")
                .collect()
        };
        let module = cells[0].trim_matches('`').to_string();
        out.insert(
            module,
            Rule {
                may_use: list(cells[1]).into_iter().collect(),
                never: list(cells[2]),
            },
        );
    }
    assert!(out.len() >= 10, "the layers table has {} rows", out.len());
    out
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its tests and comments.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("source");
    let text = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => &text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `crate::a::b` paths as (`a`, `b`); `b` empty when absent.
fn crate_paths(code: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        let ident = |s: &str| -> String {
            s.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        };
        let first = ident(after);
        let second = after[first.len()..]
            .strip_prefix("::")
            .map(ident)
            .unwrap_or_default();
        out.push((first, second));
        rest = after;
    }
    out
}

/// `src/registry/tx.rs` → (`registry`, `tx`); `src/engine.rs` → (`engine`, ``).
fn module_of(path: &Path) -> (String, String) {
    let rel = path.strip_prefix(root().join("src")).expect("under src");
    let parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    match parts.as_slice() {
        [one] => (one.clone(), String::new()),
        [top, file, ..] => (
            top.clone(),
            if file == "mod" {
                String::new()
            } else {
                file.clone()
            },
        ),
        [] => unreachable!("a file has a name"),
    }
}

fn has_word(code: &str, word: &str) -> bool {
    code.match_indices(word).any(|(i, _)| {
        let before = code[..i].chars().next_back();
        let after = code[i + word.len()..].chars().next();
        let boundary = |c: Option<char>| c.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
        boundary(before) && boundary(after)
    })
}

#[test]
fn every_module_imports_only_what_the_architecture_allows() {
    let rules = rules();
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    files.sort();
    let mut problems = Vec::new();
    for file in &files {
        let (module, _) = module_of(file);
        // The binary (main, cli and its settings file) and the crate root see everything.
        if matches!(module.as_str(), "main" | "cli" | "settings_file" | "lib") {
            continue;
        }
        let Some(rule) = rules.get(&module) else {
            problems.push(format!(
                "{}: module `{module}` has no row in ARCHITECTURE.md's layers table",
                file.display()
            ));
            continue;
        };
        let code = code(file);
        for (first, second) in crate_paths(&code) {
            let allowed = first == module
                || rule.may_use.contains(&first)
                || rule.may_use.contains(&format!("{first}::{second}"))
                // Re-exports of `commands` at the crate root.
                || (rules.contains_key("commands")
                    && ["batch", "bench", "sidecar", "synth", "transfer"].contains(&first.as_str())
                    && (module == "commands" || rule.may_use.contains("commands")));
            if !allowed {
                problems.push(format!(
                    "{}: `{module}` uses `crate::{first}{}`, which its row does not allow",
                    file.display(),
                    if second.is_empty() {
                        String::new()
                    } else {
                        format!("::{second}")
                    }
                ));
            }
        }
        for word in &rule.never {
            if has_word(&code, word) {
                problems.push(format!(
                    "{}: `{module}` names `{word}`, which it must never see",
                    file.display()
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "layering broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_layers_table_is_a_hierarchy() {
    let rules = rules();
    // Depth-first search for a circle through the modules' allowed uses.
    fn visit(
        m: &str,
        rules: &BTreeMap<String, Rule>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut circle = path[i..].to_vec();
            circle.push(m.to_string());
            return Some(circle);
        }
        if !done.insert(m.to_string()) {
            return None;
        }
        path.push(m.to_string());
        if let Some(rule) = rules.get(m) {
            for dep in &rule.may_use {
                let top = dep.split("::").next().unwrap_or(dep);
                if top != m
                    && let Some(c) = visit(top, rules, path, done)
                {
                    return Some(c);
                }
            }
        }
        path.pop();
        None
    }
    for m in rules.keys() {
        let circle = visit(m, &rules, &mut Vec::new(), &mut BTreeSet::new());
        assert!(
            circle.is_none(),
            "the layers table has a circle: {}",
            circle.unwrap_or_default().join(" → ")
        );
    }
}

#[test]
fn no_two_files_of_a_module_import_each_other() {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    // (module, file) → the sibling files it names.
    let mut edges: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    let mut siblings: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let (module, sub) = module_of(file);
        if !sub.is_empty() {
            siblings
                .entry(module.clone())
                .or_default()
                .insert(sub.clone());
        }
    }
    for file in &files {
        let (module, sub) = module_of(file);
        if sub.is_empty() {
            continue; // mod.rs declares and re-exports its children
        }
        let code = code(file);
        let mut named = BTreeSet::new();
        for (first, second) in crate_paths(&code) {
            if first == module {
                named.insert(second);
            }
        }
        let mut rest = code.as_str();
        while let Some(i) = rest.find("super::") {
            let after = &rest[i + "super::".len()..];
            let ident: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            named.insert(ident);
            rest = after;
        }
        let known = siblings.get(&module).cloned().unwrap_or_default();
        named.retain(|n| known.contains(n) && *n != sub);
        edges.insert((module, sub), named);
    }
    for ((module, a), targets) in &edges {
        for b in targets {
            // Is there a way back from b to a?
            let mut seen = BTreeSet::new();
            let mut stack = vec![b.clone()];
            while let Some(x) = stack.pop() {
                if x == *a {
                    panic!(
                        "`{module}/{a}.rs` and `{module}/{b}.rs` import each other (directly or in a circle)"
                    );
                }
                if seen.insert(x.clone())
                    && let Some(next) = edges.get(&(module.clone(), x))
                {
                    stack.extend(next.iter().cloned());
                }
            }
        }
    }
}
