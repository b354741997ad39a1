//! The layout keeps the architecture readable (ARCHITECTURE.md): no source file under `src/` is
//! longer than [`MAX_LINES`], and the top-level modules of `src/` (`src/x.rs` or `src/x/`) depend
//! on one another without a circle. A module depends on another when its code (comment lines and
//! tests excluded) names `crate::other`. Reads the files only; runs natively (wasm32 has no file
//! system).
#![cfg(not(target_arch = "wasm32"))]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 700;

/// Every `.rs` file under `dir`, with its path relative to `src/`.
fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The top-level module a file belongs to: `src/x.rs` and `src/x/…` are module `x`.
fn module_of(relative: &Path) -> String {
    let first = relative.components().next().expect("a path below src/").as_os_str().to_string_lossy().into_owned();
    first.strip_suffix(".rs").map(str::to_owned).unwrap_or(first)
}

/// The code of a file without its comment lines and its `#[cfg(test)]` module (always last in
/// this crate).
fn code_without_tests(text: &str) -> String {
    let code = match text.find("\n#[cfg(test)]") {
        Some(at) => &text[..at],
        None => text,
    };
    code.lines().filter(|line| !line.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// The top-level modules `code` names as `crate::name` (`$crate::name` in macros too).
fn named_modules(code: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `mycrate::`, not `crate::`
        }
        let rest = &code[at + "crate::".len()..];
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if modules.contains(&name) {
            named.insert(name);
        }
    }
    named
}

/// The module graph: module → the modules it names.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let root = src();
    let relative: Vec<PathBuf> = files.iter().map(|f| f.strip_prefix(&root).expect("below src/").to_path_buf()).collect();
    let mut modules: BTreeSet<String> = relative.iter().map(|r| module_of(r)).collect();
    modules.remove("lib");
    let mut graph: BTreeMap<String, BTreeSet<String>> = modules.iter().map(|m| (m.clone(), BTreeSet::new())).collect();
    for (file, relative) in files.iter().zip(&relative) {
        let module = module_of(relative);
        if module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("a readable source file");
        let named = named_modules(&code_without_tests(&text), &modules);
        graph.get_mut(&module).expect("listed").extend(named.into_iter().filter(|n| *n != module));
    }
    graph
}

/// A circle in `graph`, as the modules along it, if there is one.
fn find_circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        module: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|m| m == module) {
            let mut circle = path[at..].to_vec();
            circle.push(module.to_owned());
            return Some(circle);
        }
        if done.contains(module) {
            return None;
        }
        path.push(module.to_owned());
        for next in &graph[module] {
            if let Some(circle) = visit(next, graph, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.insert(module.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|module| visit(module, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_source_file_is_longer_than_the_limit() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|file| {
            let lines = std::fs::read_to_string(file).expect("a readable source file").lines().count();
            (lines > MAX_LINES).then(|| format!("{} ({lines} lines)", file.display()))
        })
        .collect();
    assert!(long.is_empty(), "files over {MAX_LINES} lines: split them by concern: {long:?}");
}

#[test]
fn the_top_level_modules_depend_on_each_other_without_a_circle() {
    let graph = module_graph();
    if let Some(circle) = find_circle(&graph) {
        panic!("import circle among src/ modules: {}\nthe graph: {graph:#?}", circle.join(" → "));
    }
}

#[test]
fn the_circle_finder_finds_circles_and_only_circles() {
    let graph = |edges: &[(&str, &str)]| {
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, to) in edges {
            graph.entry((*from).to_owned()).or_default().insert((*to).to_owned());
            graph.entry((*to).to_owned()).or_default();
        }
        graph
    };
    assert_eq!(find_circle(&graph(&[("a", "b"), ("b", "c"), ("a", "c")])), None);
    assert_eq!(find_circle(&graph(&[("a", "b"), ("b", "c"), ("c", "a")])).map(|c| c.len()), Some(4));
    let modules: BTreeSet<String> = ["time", "apple"].map(str::to_owned).into();
    let named = named_modules("use crate::time::Millis;\nlet x = $crate::apple::x; mycrate::time; crate::Engine", &modules);
    assert_eq!(named, modules);
    let code = code_without_tests("use crate::time::Millis;\n    /// See [`crate::apple`].\n#[cfg(test)]\nmod tests { use crate::apple; }");
    assert_eq!(named_modules(&code, &modules), ["time".to_owned()].into());
}
