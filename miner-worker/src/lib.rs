pub mod bench;
pub mod search;
