//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the fuzz targets'
//! logic, so a plain `cargo test` on stable catches regressions without cargo-fuzz or
//! nightly. The targets' code is compiled here straight from `fuzz/src/targets/`; see
//! `fuzz/README.md`.

#[path = "../fuzz/src/targets/mod.rs"]
mod targets;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// The corpus files of one target, sorted; panics if there are none.
fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join("corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    files
}

/// Runs every corpus file of `target` through `run`; fails naming each file that panicked.
fn replay(target: &str, run: fn(&[u8])) {
    let mut failed = Vec::new();
    for path in corpus(target) {
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if catch_unwind(AssertUnwindSafe(|| run(&data))).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: {} corpus input(s) failed: {failed:#?}",
        failed.len()
    );
}

#[test]
fn frame_corpus() {
    replay("frame", targets::frame);
}

#[test]
fn handshake_corpus() {
    replay("handshake", targets::handshake);
}

#[test]
fn head_corpus() {
    replay("head", targets::head);
}

#[test]
fn agent_http_corpus() {
    replay("agent_http", targets::agent_http);
}

#[test]
fn ingress_corpus() {
    replay("ingress", targets::ingress);
}

#[test]
fn stream_corpus() {
    replay("stream", targets::stream);
}

/// Every target has a corpus directory and a test above (a new target must get both).
#[test]
fn every_target_has_a_corpus() {
    for (name, _) in targets::TARGETS {
        assert!(!corpus(name).is_empty(), "{name}");
    }
}
