//! `cargo fuzz run messages` (see scripts/fuzz): the checks live in `pool_fuzz::messages`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pool_fuzz::messages(data));
