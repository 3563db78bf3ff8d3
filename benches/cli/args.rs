//! Command-line options of the bench binaries (`--key value` pairs), shared by `benches/e2e.rs`
//! and `benches/chaos.rs` so both read options the same way. Lives in a subfolder so cargo
//! does not take it for a bench target of its own.

use std::collections::HashMap;

/// The `--key value` pairs of this process's arguments. `--help`/`-h` and malformed arguments
/// give `Err` with `usage` appended, for the caller to print.
pub fn key_values(usage: &str) -> Result<HashMap<String, String>, String> {
    let mut kv = HashMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        // cargo passes `--bench` to every bench target (harness or not); it carries no value.
        if a == "--bench" {
            continue;
        }
        if a == "--help" || a == "-h" {
            return Err(usage.into());
        }
        let Some(key) = a.strip_prefix("--") else { return Err(format!("unexpected argument {a:?}\n{usage}")) };
        let value = it.next().ok_or_else(|| format!("--{key} needs a value\n{usage}"))?;
        kv.insert(key.to_owned(), value);
    }
    Ok(kv)
}
