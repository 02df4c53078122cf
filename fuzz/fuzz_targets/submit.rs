//! `cargo fuzz run submit` (see scripts/fuzz): the checks live in `pool_fuzz::submit`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pool_fuzz::submit(data));
