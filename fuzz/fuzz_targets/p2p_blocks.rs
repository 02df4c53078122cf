//! `cargo fuzz run p2p_blocks` (see scripts/fuzz): the checks live in `pool_fuzz::p2p_blocks`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pool_fuzz::p2p_blocks(data));
