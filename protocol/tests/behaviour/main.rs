//! The protocol library's behaviour: one test binary whose modules are each named after the
//! behaviour they pin (`cargo nextest run -p protocol -E 'test(/^MODULE::/)'` runs one).

mod codec_frames_lines;
mod compact_target_edge_cases;
mod headers_match_real_blocks;
mod merkle_branch_matches_full_tree;
mod messages_round_trip;
