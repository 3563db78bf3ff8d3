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
    let mut used = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
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
