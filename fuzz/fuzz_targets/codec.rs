//! `cargo fuzz run codec` (see scripts/fuzz): the checks live in `pool_fuzz::codec`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pool_fuzz::codec(data));
