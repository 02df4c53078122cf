//! `cargo fuzz run p2p_headers` (see scripts/fuzz): the checks live in `pool_fuzz::p2p_headers`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pool_fuzz::p2p_headers(data));
