//! End-to-end benchmark (placeholder; see bench/README.md).
fn main() {}
