//! `--http-clients`: readers of the public API beside the miners, each requesting
//! `--http-paths` in turn, one request after the last answer, with each path's latencies.

use std::time::Instant;

use tokio::sync::watch;

use super::Args;

/// Per path: answer latencies (µs) and failed requests.
pub type PathLatencies = std::collections::BTreeMap<String, (Vec<u32>, u64)>;

/// `--http-clients` readers, each requesting the paths in turn until `stop`.
pub fn http_load(
    args: &Args,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<PathLatencies> {
    let paths: Vec<String> = args
        .http_paths
        .split(',')
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    let (clients, base) = (args.http_clients, args.http.clone());
    tokio::spawn(async move {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(clients)
            .build()
            .expect("an HTTP client");
        let mut readers = Vec::new();
        for c in 0..clients {
            let (http, base, paths, stop) =
                (http.clone(), base.clone(), paths.clone(), stop.clone());
            readers.push(tokio::spawn(async move {
                let mut mine = PathLatencies::new();
                let mut i = c;
                while !*stop.borrow() {
                    let path = &paths[i % paths.len()];
                    let url = format!("{base}{}", path.replace("{i}", &(i % 20_000).to_string()));
                    let t = Instant::now();
                    let ok = match http.get(&url).send().await {
                        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    let e = mine.entry(path.clone()).or_default();
                    if ok {
                        e.0.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    } else {
                        e.1 += 1;
                    }
                    i += 1;
                }
                mine
            }));
        }
        let mut all = PathLatencies::new();
        for r in readers {
            if let Ok(mine) = r.await {
                for (path, (lat, failed)) in mine {
                    let e = all.entry(path).or_default();
                    e.0.extend(lat);
                    e.1 += failed;
                }
            }
        }
        all
    })
}
