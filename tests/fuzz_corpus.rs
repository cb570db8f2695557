//! Replays the fuzz corpora (`fuzz/corpus/<target>/`) and the inputs of past findings
//! (`fuzz/regressions/<target>/`) through the fuzz target bodies in `flextype::fuzzing`, so
//! `cargo test` on stable catches a regression without a fuzzer. Each finding also has a
//! test of its own here, named after what it found. See `docs/FUZZING.md`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use flextype::fuzzing;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Every file of `fuzz/<kind>/<target>/`, sorted; none when the folder does not exist.
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let Ok(dir) = std::fs::read_dir(fuzz_dir().join(kind).join(target)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = dir
        .map(|e| e.expect("a corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `body` on every corpus and regression input of `target`, naming each input that
/// panics.
fn replay(target: &str, body: impl Fn(&[u8])) {
    let corpus = inputs("corpus", target);
    assert!(!corpus.is_empty(), "fuzz/corpus/{target}/ has no seeds");
    let mut failed = Vec::new();
    for file in corpus.iter().chain(&inputs("regressions", target)) {
        let data = std::fs::read(file).expect("a corpus file");
        if catch_unwind(AssertUnwindSafe(|| body(&data))).is_err() {
            failed.push(file.display().to_string());
        }
    }
    assert!(failed.is_empty(), "{target} fails on {failed:#?}");
}

#[test]
fn media_path_corpus_replays() {
    let dir = tempfile::tempdir().unwrap();
    let layout = fuzzing::media_path_fixture(dir.path());
    replay("media_path", |data| fuzzing::media_path_in(&layout, data));
}

#[test]
fn thumb_spec_corpus_replays() {
    replay("thumb_spec", fuzzing::thumb_spec);
}

#[test]
fn meta_yaml_corpus_replays() {
    let dir = tempfile::tempdir().unwrap();
    replay("meta_yaml", |data| fuzzing::meta_yaml_in(dir.path(), data));
}

#[test]
fn upload_name_corpus_replays() {
    replay("upload_name", fuzzing::upload_name);
}

#[test]
fn range_corpus_replays() {
    replay("range", fuzzing::range);
}
