//! Every committed fuzz input, corpus and regressions alike, through the fuzzers' checks: a
//! crash once found stays fixed, and the suite covers what fuzzing covered without needing
//! libFuzzer or a nightly compiler.

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(
                outcome.is_ok(),
                "{} breaks the {target} checks",
                path.display()
            );
            n += 1;
        }
    }
    assert!(n > 0, "no inputs committed for {target}");
    eprintln!("{target}: {n} inputs replayed");
}

#[test]
fn codec_corpus_replays_clean() {
    replay("codec", pool_fuzz::codec);
}

#[test]
fn messages_corpus_replays_clean() {
    replay("messages", pool_fuzz::messages);
}

#[test]
fn submit_corpus_replays_clean() {
    replay("submit", pool_fuzz::submit);
}
