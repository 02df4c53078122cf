//! Several pool-servers behind one name on one database are edges of one pool: each has an
//! id, the first byte of every extranonce1 it hands out, so a miner moved from one edge to
//! another never searches the same coinbase space as a miner of the other.

use crate::common;

use std::collections::HashSet;

use clap::Parser;
use common::*;
use pool_server::config::Config;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_edges_on_one_database_split_the_extranonce1_space() {
    let db = PgTestDb::create().await;
    let one = start_pool(&["--database-url", &db.url, "--edge-id", "1"]).await;
    let two = start_pool(&["--database-url", &db.url, "--edge-id", "2"]).await;
    let mut seen = Vec::new();
    for (pool, edge) in [(&one, 1u8), (&two, 2u8)] {
        let mut values = HashSet::new();
        for _ in 0..30 {
            let mut c = Client::connect(pool.stratum()).await;
            c.subscribe().await;
            let en1 = c.extranonce1.clone().expect("subscribed");
            assert_eq!(en1.len(), 4, "the pool's extranonce1 size is kept");
            assert_eq!(en1.0[0], edge, "{en1:?} begins with the edge's id");
            values.insert(en1);
        }
        assert_eq!(values.len(), 30);
        seen.push(values);
    }
    assert!(seen[0].is_disjoint(&seen[1]));
    one.stop().await;
    two.stop().await;
    db.drop_db().await;
}

#[test]
fn an_edge_id_without_room_for_miners_is_refused_naming_the_flags() {
    let parse = |extra: &[&str]| {
        let mut args = vec!["pool-server"];
        args.extend_from_slice(extra);
        Config::try_parse_from(args).map_err(|e| e.to_string())
    };
    let cfg = parse(&["--edge-id", "3", "--extranonce1-size", "2"]).unwrap();
    let err = cfg.check().unwrap_err().to_string();
    assert!(
        err.contains("--edge-id") && err.contains("--extranonce1-size"),
        "{err}"
    );
    for bad in ["0", "256", "north"] {
        let err = parse(&["--edge-id", bad]).unwrap_err();
        assert!(err.contains("--edge-id"), "{err}");
    }
}
