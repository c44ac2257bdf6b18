//! storage/ is layered: no module depends, through its `crate::` and `super::` paths, on a
//! module that depends back on it. An import circle makes every module in it something the
//! reader must hold in mind at once; this guards the layout the crate's `//!` describes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A module's path below the crate root, e.g. `["replicate", "sparse"]`.
type Module = Vec<String>;

#[test]
fn no_module_imports_one_that_imports_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    collect(&src, &src, &mut files);
    assert!(files.len() > 10, "found only {} modules", files.len());
    let modules: BTreeSet<Module> = files.keys().cloned().collect();
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, text) in &files {
        if module.is_empty() {
            // lib.rs declares and re-exports everything; it is the top, not a layer.
            continue;
        }
        let targets = edges.entry(module.clone()).or_default();
        for path in paths(module, &strip_comments(text)) {
            let Some(target) = resolve(&modules, &path) else {
                continue;
            };
            // A module's own children (its `mod` lines and re-exports of them) are part of it.
            if target == *module || target.starts_with(module) {
                continue;
            }
            targets.insert(target);
        }
    }
    if let Some(cycle) = find_cycle(&edges) {
        let names: Vec<String> = cycle.iter().map(|m| m.join("::")).collect();
        panic!("import circle: {}", names.join(" -> "));
    }
}

#[test]
fn the_checker_finds_a_circle_and_reads_grouped_imports() {
    let a: Module = vec!["a".into()];
    let b: Module = vec!["b".into()];
    let modules: BTreeSet<Module> = [a.clone(), b.clone()].into();
    let found = paths(&a, "use crate::{b::{X, Y}, c};\nfn f() { crate::b::g(); }");
    assert!(
        found.contains(&vec!["b".to_string(), "X".into()]),
        "{found:?}"
    );
    assert_eq!(
        resolve(&modules, &["b".to_string(), "X".into()]),
        Some(b.clone())
    );
    let mut edges = BTreeMap::new();
    edges.insert(a.clone(), BTreeSet::from([b.clone()]));
    edges.insert(b.clone(), BTreeSet::from([a.clone()]));
    assert!(find_cycle(&edges).is_some());
    edges.insert(b, BTreeSet::new());
    assert!(find_cycle(&edges).is_none());
    assert_eq!(strip_comments("x // crate::a\n/// crate::b\ny"), "x \n\ny");
}

fn collect(root: &Path, dir: &Path, files: &mut BTreeMap<Module, String>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            collect(root, &path, files);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let relative = path.strip_prefix(root).expect("under src");
        let mut module: Module = relative
            .iter()
            .map(|part| part.to_string_lossy().trim_end_matches(".rs").to_string())
            .collect();
        if matches!(module.last().map(String::as_str), Some("mod" | "lib")) {
            module.pop();
        }
        files.insert(module, std::fs::read_to_string(&path).expect("read module"));
    }
}

/// The text with `//` comments (doc comments too) removed, a doc link not being a
/// dependency, and without its unit tests, whose `super` is the module itself.
fn strip_comments(text: &str) -> String {
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path the module names from the crate root: `crate::…` and `super::…` paths, and
/// each leaf of a grouped `use`.
fn paths(module: &Module, text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for start in ["crate::", "super::"] {
        let mut rest = text;
        while let Some(at) = rest.find(start) {
            let before = rest[..at].chars().last();
            rest = &rest[at + start.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let base: Vec<String> = if start == "crate::" {
                Vec::new()
            } else {
                module[..module.len().saturating_sub(1)].to_vec()
            };
            expand(base, rest, &mut out);
        }
    }
    out
}

/// Expands the use tree at the start of `text` under `prefix`.
fn expand(prefix: Vec<String>, text: &str, out: &mut Vec<Vec<String>>) -> usize {
    let mut path = prefix;
    let mut at = 0;
    let bytes = text.as_bytes();
    loop {
        while at < bytes.len() && bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        if at < bytes.len() && bytes[at] == b'{' {
            at += 1;
            loop {
                at += expand(path.clone(), &text[at..], out);
                while at < bytes.len() && (bytes[at].is_ascii_whitespace() || bytes[at] == b',') {
                    at += 1;
                }
                if at >= bytes.len() || bytes[at] == b'}' {
                    return at + 1;
                }
            }
        }
        let end = text[at..]
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .map_or(text.len(), |n| at + n);
        if end > at {
            path.push(text[at..end].to_string());
        }
        at = end;
        if text[at..].starts_with("::") {
            at += 2;
            continue;
        }
        out.push(path);
        return at;
    }
}

/// The module a path lives in: its longest prefix that is a module.
fn resolve(modules: &BTreeSet<Module>, path: &[String]) -> Option<Module> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|prefix| modules.contains(prefix))
}

fn find_cycle(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Option<Vec<Module>> {
    fn visit(
        module: &Module,
        edges: &BTreeMap<Module, BTreeSet<Module>>,
        stack: &mut Vec<Module>,
        done: &mut BTreeSet<Module>,
    ) -> Option<Vec<Module>> {
        if let Some(at) = stack.iter().position(|m| m == module) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(module.clone());
            return Some(cycle);
        }
        if done.contains(module) {
            return None;
        }
        stack.push(module.clone());
        for next in edges.get(module).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(module.clone());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|module| visit(module, edges, &mut Vec::new(), &mut done))
}
