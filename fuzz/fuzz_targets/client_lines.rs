//! `cargo fuzz run client_lines` (see scripts/fuzz): the checks live in `pool_fuzz::client_lines`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pool_fuzz::client_lines(data));
