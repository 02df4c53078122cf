fn main() {
    miner_worker::bench::run(&miner_worker::bench::Options {
        threads: 2,
        each: std::time::Duration::from_millis(500),
        runs: 3,
    });
}
