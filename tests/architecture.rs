//! The files of the runtime and of the macro crate depend on each other without a cycle.
//!
//! Every `crate::…` and `super::…` path in a file of `cache-runtime/src` or
//! `cache-macros/src` (outside comments)
//! is a dependency on the file of the longest module prefix that the path names. A folder's
//! `mod.rs` only declares and re-exports, so a file that imports through it (`crate::bus::Bus`
//! instead of `crate::bus::connection::Bus`) depends on the folder's face, and the checker
//! says so as a cycle. Run it alone with `cargo test --test architecture -- --nocapture` to
//! see the graph's size.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`crate::mount::live`) → file, for every file of the runtime.
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("readable src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(src, &mut files);
    let mut map = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(src).expect("under src").with_extension("");
        let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
        match parts.last().map(String::as_str) {
            Some("lib") | Some("mod") => {
                parts.pop();
            }
            // `#[path = "private.rs"] pub mod __private;` in lib.rs.
            Some("private") if parts.len() == 1 => parts = vec!["__private".to_owned()],
            _ => {}
        }
        let name = std::iter::once("crate".to_owned()).chain(parts).collect::<Vec<_>>().join("::");
        map.insert(name, file);
    }
    map
}

/// The paths a file names: `crate::a::b…` and `super::…`, resolved to absolute module paths.
fn paths_in(text: &str, module: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        for (start, _) in code.match_indices("crate::").chain(code.match_indices("super::")) {
            // Not a longer identifier ending in `crate`/`super` (e.g. `my_crate::`).
            if start > 0 && code.as_bytes()[start - 1].is_ascii_alphanumeric() | (code.as_bytes()[start - 1] == b'_') {
                continue;
            }
            let rest = &code[start..];
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
            let path = rest[..end].trim_end_matches(':');
            let resolved = if let Some(tail) = path.strip_prefix("super") {
                let mut base: Vec<&str> = module.split("::").collect();
                let mut tail = tail;
                // `super` of `a::b` is `a`, whether `b` is a file or a folder's face.
                base.pop();
                while let Some(t) = tail.strip_prefix("::super") {
                    base.pop();
                    tail = t;
                }
                format!("{}{}", base.join("::"), tail)
            } else {
                path.to_owned()
            };
            out.push(resolved);
        }
    }
    out
}

#[test]
fn the_runtime_files_depend_on_each_other_without_a_cycle() {
    no_cycles_in("cache-runtime/src");
}

#[test]
fn the_macro_files_depend_on_each_other_without_a_cycle() {
    no_cycles_in("cache-macros/src");
}

/// Fails on any import cycle between the files of the crate whose sources are in `dir`.
fn no_cycles_in(dir: &str) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let modules = modules(&src);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, file) in &modules {
        let text = std::fs::read_to_string(file).expect("readable file");
        for path in paths_in(&text, module) {
            // The longest module prefix of the path that is a file of ours.
            let mut parts: Vec<&str> = path.split("::").collect();
            let target = loop {
                let candidate = parts.join("::");
                if modules.contains_key(&candidate) {
                    break Some(candidate);
                }
                if parts.pop().is_none() || parts.is_empty() {
                    break None;
                }
            };
            if let Some(target) = target
                && target != *module
            {
                edges.entry(module.clone()).or_default().insert(target);
            }
        }
    }
    let mut cycles = Vec::new();
    let mut state: BTreeMap<&str, u8> = BTreeMap::new(); // 1: on the stack, 2: done
    fn visit<'a>(
        node: &'a str,
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<&'a str, u8>,
        stack: &mut Vec<&'a str>,
        cycles: &mut Vec<String>,
    ) {
        state.insert(node, 1);
        stack.push(node);
        for next in edges.get(node).into_iter().flatten() {
            match state.get(next.as_str()) {
                Some(1) => {
                    let from = stack.iter().position(|n| *n == next).expect("on the stack");
                    let mut cycle: Vec<&str> = stack[from..].to_vec();
                    cycle.push(next);
                    cycles.push(cycle.join(" -> "));
                }
                Some(_) => {}
                None => visit(next, edges, state, stack, cycles),
            }
        }
        stack.pop();
        state.insert(node, 2);
    }
    for module in modules.keys() {
        if !state.contains_key(module.as_str()) {
            visit(module, &edges, &mut state, &mut Vec::new(), &mut cycles);
        }
    }
    let n_edges: usize = edges.values().map(BTreeSet::len).sum();
    println!("{dir}: {} files, {} dependencies between them, {} cycles", modules.len(), n_edges, cycles.len());
    assert!(cycles.is_empty(), "import cycles between the files of {dir}:\n{}", cycles.join("\n"));
}
