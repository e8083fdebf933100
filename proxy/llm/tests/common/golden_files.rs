//! Byte-exact golden files, shared by the golden harnesses:
//! `UPDATE_GOLDEN=1 cargo test -p promptwall-llm` rewrites them.
#![allow(dead_code)]

use std::path::Path;

use promptwall_llm::translate::Notes;

pub fn update() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some()
}

/// `actual` equals the file at `path` (or becomes it when updating).
pub fn check(path: &Path, actual: &[u8]) {
    if update() {
        std::fs::write(path, actual).unwrap();
        return;
    }
    let expected =
        std::fs::read(path).unwrap_or_else(|_| panic!("{} missing: run with UPDATE_GOLDEN=1", path.display()));
    if expected != actual {
        panic!(
            "{} differs from the golden file.\n--- expected\n{}\n--- actual\n{}",
            path.display(),
            String::from_utf8_lossy(&expected),
            String::from_utf8_lossy(actual)
        );
    }
}

/// Notes are a file, one per line, only when there are some: a file left
/// from an earlier run with notes fails as stale.
pub fn check_notes(path: &Path, notes: &Notes) {
    if notes.is_empty() {
        if update() {
            let _ = std::fs::remove_file(path);
        }
        assert!(!path.exists(), "{} is stale: nothing is noted now", path.display());
        return;
    }
    check(path, (notes.0.join("\n") + "\n").as_bytes());
}
