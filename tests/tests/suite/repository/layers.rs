//! The library's modules import one way: no module of `shared/src` uses one that uses it,
//! directly or around a loop (tests and comments aside).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The top-level module a file of `shared/src` belongs to (`None` for `lib.rs`).
fn module_of(root: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(root).ok()?;
    let first = relative.components().next()?.as_os_str().to_string_lossy();
    let name = first.trim_end_matches(".rs").to_owned();
    (name != "lib").then_some(name)
}

/// The code of a file without its comments and its `#[cfg(test)]` module.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn files(folder: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(folder).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
    found
}

/// Which top-level modules each top-level module uses (`crate::name`).
fn uses() -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/src");
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files(&root) {
        let Some(module) = module_of(&root, &file) else {
            continue;
        };
        let code = code(&std::fs::read_to_string(&file).unwrap());
        for used in code.split("crate::").skip(1) {
            let used: String = used
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !used.is_empty() && used != module {
                uses.entry(module.clone()).or_default().insert(used);
            }
        }
    }
    uses
}

/// A loop through `from`, if there is one.
fn loop_through(uses: &BTreeMap<String, BTreeSet<String>>, from: &str) -> Option<Vec<String>> {
    let mut paths = vec![vec![from.to_owned()]];
    while let Some(path) = paths.pop() {
        for next in uses.get(path.last().unwrap()).into_iter().flatten() {
            if next == from {
                return Some([path.clone(), vec![next.clone()]].concat());
            }
            if !path.contains(next) {
                paths.push([path.clone(), vec![next.clone()]].concat());
            }
        }
    }
    None
}

#[test]
fn the_modules_of_the_library_import_one_way() {
    let uses = uses();
    assert!(
        uses.get("routes").is_some_and(|u| u.contains("handlers")),
        "the scan found no use of handlers by routes: it reads nothing"
    );
    for module in uses.keys() {
        if let Some(cycle) = loop_through(&uses, module) {
            panic!("shared/src: {} import each other", cycle.join(" -> "));
        }
    }
}
