//! `cargo fuzz run p2p_frames` (see scripts/fuzz): the checks live in `pool_fuzz::p2p_frames`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pool_fuzz::p2p_frames(data));
