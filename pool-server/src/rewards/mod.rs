//! Rewards: who is owed what for the blocks the pool finds. [`scheme`] holds the pure split
//! (PPLNS, PROP, SOLO; integer satoshis; a fixed rule for the remainder). The ledger (credits
//! per block, maturity, orphans voiding credits) and payouts build on it.

pub mod scheme;
