//! The house rules of ARCHITECTURE.md, checked against the code's own imports.
//!
//! ARCHITECTURE.md's layer table gives every top-level module of `src/` a rank. A module may use
//! only modules of a lower rank (`main.rs` and `commands/`, the wiring, may use anything). That
//! rules out import cycles and upward imports at once, and keeps the document true: a new
//! module has to be placed in the table before this test passes, and a move that breaks a rule
//! is named here with the file that made it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The binary (`main.rs` and its command line, `cli.rs`), the crate root and the commands'
/// wing: they wire the others together and so may use any of them.
const WIRING: &[&str] = &["main", "cli", "lib", "commands"];

/// The layer table: module → rank, read from ARCHITECTURE.md's rows `| <rank> | `a`, `b` | … |`.
fn ranks() -> BTreeMap<String, u32> {
    let doc = std::fs::read_to_string(Path::new(ROOT).join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let start = doc.find("## Layers").expect("ARCHITECTURE.md has a \"## Layers\" section");
    let mut ranks = BTreeMap::new();
    for line in doc[start..].lines().skip(1).take_while(|l| !l.starts_with("## ")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let Some(rank) = cells.get(1).and_then(|c| c.parse::<u32>().ok()) else { continue };
        for name in cells[2].split('`').skip(1).step_by(2) {
            let name = name.trim_end_matches('/').trim_end_matches(".rs");
            assert!(ranks.insert(name.to_owned(), rank).is_none(), "{name} is listed twice in ARCHITECTURE.md's layer table");
        }
    }
    assert!(ranks.len() > 10, "ARCHITECTURE.md's layer table is missing or unreadable: {ranks:?}");
    ranks
}

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to: `src/line/client.rs` → `line`.
fn module_of(src: &Path, file: &Path) -> String {
    let first = file.strip_prefix(src).unwrap().components().next().unwrap();
    first.as_os_str().to_string_lossy().trim_end_matches(".rs").to_owned()
}

/// Source without comments, so that doc links and prose do not count as imports.
fn code_only(text: &str) -> String {
    text.lines().map(|l| l.find("//").map_or(l, |i| &l[..i])).collect::<Vec<_>>().join("\n")
}

/// The top-level modules a piece of code names through `crate::`, including the ones inside
/// `use crate::{a::x, b::{y, z}}` groups.
fn used_modules(code: &str) -> BTreeSet<String> {
    used_after(code, "crate::")
}

/// The first path segments named after `prefix` (`crate::`, `super::`), including the ones
/// inside `use <prefix>{a::x, b::{y, z}}` groups.
fn used_after(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        rest = &rest[i + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Names at depth 1 of the group: each starts the group or follows a comma.
            let mut depth = 1;
            let mut at_start = true;
            let mut name = String::new();
            for c in group.chars() {
                let ident = c.is_alphanumeric() || c == '_';
                if depth == 1 && at_start && ident {
                    name.push(c);
                    continue;
                }
                if !name.is_empty() {
                    used.insert(std::mem::take(&mut name));
                    at_start = false;
                }
                match c {
                    '{' => depth += 1,
                    '}' if depth == 1 => break,
                    '}' => depth -= 1,
                    ',' if depth == 1 => at_start = true,
                    _ => {}
                }
            }
        } else {
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            used.insert(name);
        }
    }
    used
}

/// Which module uses which, with the files that do: (user, used) → files.
fn imports() -> BTreeMap<(String, String), BTreeSet<String>> {
    let src = Path::new(ROOT).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut edges: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let user = module_of(&src, &file);
        let code = code_only(&std::fs::read_to_string(&file).unwrap());
        for used in used_modules(&code) {
            if used != user && used != "self" && used != "super" {
                let shown = file.strip_prefix(ROOT).unwrap().display().to_string();
                edges.entry((user.clone(), used)).or_default().insert(shown);
            }
        }
    }
    edges
}

#[test]
fn every_module_has_a_place_in_the_layer_table() {
    let ranks = ranks();
    let src = Path::new(ROOT).join("src");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = module_of(&src, &path);
        let is_module = path.is_dir() || path.extension().is_some_and(|e| e == "rs");
        if is_module && !WIRING.contains(&name.as_str()) && !ranks.contains_key(&name) {
            missing.push(name);
        }
    }
    assert!(missing.is_empty(), "src/ modules not in ARCHITECTURE.md's layer table: {missing:?}");
    for name in ranks.keys() {
        let exists = src.join(name).is_dir() || src.join(format!("{name}.rs")).is_file();
        assert!(exists, "ARCHITECTURE.md's layer table names `{name}`, which is not in src/");
    }
}

#[test]
fn no_module_uses_one_of_its_own_layer_or_above() {
    let ranks = ranks();
    let mut wrong = Vec::new();
    for ((user, used), files) in imports() {
        if WIRING.contains(&user.as_str()) {
            continue;
        }
        let (Some(&from), Some(&to)) = (ranks.get(&user), ranks.get(&used)) else { continue };
        if to >= from {
            let files: Vec<_> = files.into_iter().collect();
            wrong.push(format!("{user} (layer {from}) uses {used} (layer {to}) in {}", files.join(", ")));
        }
    }
    assert!(wrong.is_empty(), "imports against ARCHITECTURE.md's layers:\n  {}", wrong.join("\n  "));
}

#[test]
fn the_import_reader_sees_grouped_and_nested_imports() {
    let code = "use crate::{compose::{a, b}, line::X,\n    spool};\nfn f() { crate::metrics::m(); }";
    let used: Vec<_> = used_modules(code).into_iter().collect();
    assert_eq!(used, ["compose", "line", "metrics", "spool"]);
    assert!(used_modules(&code_only("// see crate::config::Config")).is_empty());
}

#[test]
fn doc_comments_cite_the_architecture_in_the_repository() {
    let src = Path::new(ROOT).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    rust_files(&Path::new(ROOT).join("tests"), &mut files);
    let stale: Vec<_> = files
        .iter()
        .filter(|f| std::fs::read_to_string(f).unwrap().contains(concat!("DESIGN", ".md")))
        .map(|f| f.strip_prefix(ROOT).unwrap().display().to_string())
        .collect();
    assert!(stale.is_empty(), "these cite a design document that is not in the repository; point them to ARCHITECTURE.md: {stale:?}");
}

/// Files of one module that use each other, allowed because one is the other's backend: the
/// spool's store handle (`store.rs`) dispatches to its PostgreSQL implementation
/// (`store_pg.rs`), which is written against the handle's types. Anything else is a room
/// reaching into a room that reaches back.
const FILE_CYCLES_ALLOWED: &[(&str, &str, &str)] = &[("spool", "store", "store_pg")];

/// Which sibling files each file of a module's folder uses (`super::x`, `crate::m::x`), outside
/// its unit tests. `mod.rs` is the folder's root, which declares every file, so it is left out.
fn sibling_uses() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let src = Path::new(ROOT).join("src");
    let mut modules = BTreeMap::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let module = dir.file_name().unwrap().to_string_lossy().into_owned();
        let mut files = Vec::new();
        rust_files(&dir, &mut files);
        let stems: BTreeSet<String> = files
            .iter()
            .filter(|f| f.parent() == Some(dir.as_path()))
            .map(|f| f.file_stem().unwrap().to_string_lossy().into_owned())
            .filter(|stem| stem != "mod")
            .collect();
        let mut uses = BTreeMap::new();
        for file in files.iter().filter(|f| f.parent() == Some(dir.as_path())) {
            let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
            if stem == "mod" {
                continue;
            }
            let text = std::fs::read_to_string(file).unwrap();
            let code = code_only(text.split("#[cfg(test)]\nmod tests").next().unwrap_or(""));
            let mut used = used_after(&code, "super::");
            used.extend(used_after(&code, &format!("crate::{module}::")));
            used.retain(|u| stems.contains(u) && *u != stem);
            uses.insert(stem, used);
        }
        modules.insert(module, uses);
    }
    modules
}

#[test]
fn no_two_files_of_a_module_use_each_other() {
    let mut cycles = Vec::new();
    for (module, mut uses) in sibling_uses() {
        // The allowed pair's edges are dropped; any cycle left, of two files or more, is wrong.
        for &(m, x, y) in FILE_CYCLES_ALLOWED {
            if m == module {
                uses.get_mut(x).map(|u| u.remove(y));
                uses.get_mut(y).map(|u| u.remove(x));
            }
        }
        for start in uses.keys() {
            // Depth-first from `start` through files named after it, so each cycle is reported
            // once, from its first file.
            let mut stack = vec![vec![start.clone()]];
            while let Some(path) = stack.pop() {
                for next in &uses[path.last().unwrap()] {
                    if next == start {
                        let files: Vec<_> = path.iter().chain([start]).map(|f| format!("src/{module}/{f}.rs")).collect();
                        cycles.push(files.join(" → "));
                    } else if next > start && !path.contains(next) {
                        stack.push(path.iter().cloned().chain([next.clone()]).collect());
                    }
                }
            }
        }
    }
    assert!(cycles.is_empty(), "files that use each other (move what both need into a file of its own):\n  {}", cycles.join("\n  "));
}

#[test]
fn the_sibling_reader_sees_the_spools_backend_pair() {
    // The one allowed pair is found, so the test above reads what it should.
    let spool = &sibling_uses()["spool"];
    assert!(spool["store"].contains("store_pg") && spool["store_pg"].contains("store"), "{spool:?}");
}
