//! docker-compose.yml cannot be run here (no image registry), so it is checked statically:
//! its shape, every file it mounts or builds from, every environment variable against the
//! binaries' own flags (names and values), ports against the listeners they configure, and the
//! Prometheus and Alertmanager targets against the service names. The Dockerfiles must be
//! multi-stage with a non-root runtime user. Debian's `docker-compose config` validates the
//! schema when it is installed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use serde_yaml::Value;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn yaml(path: &str) -> Value {
    serde_yaml::from_str(&std::fs::read_to_string(repo(path)).unwrap()).unwrap()
}

/// The host directories Prometheus's container mounts, by their path inside it.
fn prom_mounts_of(compose: &Value) -> BTreeMap<String, String> {
    compose["services"]["prometheus"]["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|v| {
            let v = v.as_str().unwrap();
            let mut parts = v.split(':');
            let (host, inside) = (parts.next()?, parts.next()?);
            Some((inside.to_owned(), host.trim_start_matches("./").to_owned()))
        })
        .collect()
}

/// The targets a scrape job finds in the files its `file_sd_configs` name (each a glob in a
/// directory the container mounts from the repository).
fn file_sd_targets(job: &Value, mounts: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for sd in job["file_sd_configs"]
        .as_sequence()
        .expect("file-based discovery")
    {
        for glob in sd["files"].as_sequence().unwrap() {
            let glob = glob.as_str().unwrap();
            let (dir, pattern) = glob.rsplit_once('/').unwrap();
            let host_dir = mounts
                .get(dir)
                .unwrap_or_else(|| panic!("{dir} is mounted"));
            let (prefix, suffix) = pattern.split_once('*').unwrap();
            let mut found = 0;
            for entry in std::fs::read_dir(repo(host_dir)).unwrap() {
                let name = entry.unwrap().file_name().into_string().unwrap();
                if !(name.starts_with(prefix) && name.ends_with(suffix)) {
                    continue;
                }
                found += 1;
                let groups: serde_json::Value = serde_json::from_str(
                    &std::fs::read_to_string(repo(&format!("{host_dir}/{name}"))).unwrap(),
                )
                .unwrap();
                for g in groups.as_array().unwrap() {
                    for t in g["targets"].as_array().unwrap() {
                        out.push(t.as_str().unwrap().to_owned());
                    }
                }
            }
            assert!(found > 0, "{glob} matches a file in {host_dir}");
        }
    }
    out
}

fn env_of(service: &Value) -> BTreeMap<String, String> {
    service["environment"]
        .as_mapping()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        other => serde_yaml::to_string(other).unwrap().trim().to_owned(),
                    };
                    (k.as_str().unwrap().to_owned(), v)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Turn a service's environment into command-line flags via the binary's own env names, and
/// check clap accepts them all.
fn check_env_against(
    cmd: clap::Command,
    env: &BTreeMap<String, String>,
    what: &str,
) -> Vec<String> {
    let mut args = vec![what.to_owned()];
    for (name, value) in env {
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_env().and_then(|e| e.to_str()) == Some(name.as_str()))
            .unwrap_or_else(|| {
                panic!("{what}: {name} is not an environment variable of the binary")
            });
        let long = arg.get_long().expect("every flag has a long name");
        if arg.get_action().takes_values() {
            args.push(format!("--{long}={value}"));
        } else {
            assert!(
                matches!(value.as_str(), "true" | "false"),
                "{what}: {name} is a switch"
            );
            if value == "true" {
                args.push(format!("--{long}"));
            }
        }
    }
    cmd.try_get_matches_from(&args)
        .unwrap_or_else(|e| panic!("{what}: compose environment refused by the binary: {e}"));
    args
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap()
}

#[test]
fn compose_file_is_consistent_with_the_binaries_and_monitoring() {
    let c = yaml("docker-compose.yml");
    let services = c["services"].as_mapping().unwrap();
    for name in [
        "postgres",
        "pool-server",
        "worker-1",
        "worker-2",
        "prometheus",
        "alertmanager",
        "grafana",
    ] {
        assert!(services.contains_key(name), "service {name}");
    }
    for (name, s) in services {
        let name = name.as_str().unwrap();
        assert!(
            s["image"].is_string() || s["build"].is_mapping(),
            "{name}: image or build"
        );
        if let Some(b) = s["build"].as_mapping() {
            let ctx = b.get("context").unwrap().as_str().unwrap();
            let file = b.get("dockerfile").unwrap().as_str().unwrap();
            assert!(repo(ctx).join(file).is_file(), "{name}: {file} exists");
        }
        for v in s["volumes"].as_sequence().into_iter().flatten() {
            let host = v.as_str().unwrap().split(':').next().unwrap();
            if host.starts_with("./") {
                assert!(repo(host).exists(), "{name}: mounted {host} exists");
            } else {
                assert!(
                    c["volumes"].as_mapping().unwrap().contains_key(host),
                    "{name}: named volume {host} declared"
                );
            }
        }
        if let Some(deps) = s["depends_on"].as_sequence() {
            for d in deps {
                assert!(
                    services.contains_key(d.as_str().unwrap()),
                    "{name}: depends on a service"
                );
            }
        }
    }

    // pool-server: its environment is valid flags; ports match its listeners.
    let pool = &c["services"]["pool-server"];
    let env = env_of(pool);
    check_env_against(pool_server::config::Config::command(), &env, "pool-server");
    let ports: Vec<String> = pool["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect();
    let stratum_port = port_of(&env["POOL_STRATUM"]);
    let http_port = port_of(&env["POOL_HTTP"]);
    assert!(
        ports
            .iter()
            .any(|p| p.ends_with(&format!(":{stratum_port}"))),
        "Stratum port published"
    );
    assert!(
        ports.iter().any(|p| p.ends_with(&format!(":{http_port}"))),
        "HTTP port published"
    );
    assert!(
        env["DATABASE_URL"].contains("@postgres:5432/"),
        "pool-server uses the postgres service"
    );

    // Workers: valid flags, pointed at the pool's Stratum port, metrics where Prometheus looks.
    let prom = yaml("monitoring/prometheus.yml");
    let mut targets: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for job in prom["scrape_configs"].as_sequence().unwrap() {
        let t = file_sd_targets(job, &prom_mounts_of(&c));
        targets.insert(job["job_name"].as_str().unwrap().to_owned(), t);
    }
    assert_eq!(
        targets["pool-server"],
        vec![format!("pool-server:{http_port}")]
    );
    for w in ["worker-1", "worker-2"] {
        let env = env_of(&c["services"][w]);
        check_env_against(miner_worker::config::Config::command(), &env, w);
        assert_eq!(
            env["MINER_POOL"],
            format!("stratum+tcp://pool-server:{stratum_port}")
        );
        let metrics_port = port_of(&env["MINER_METRICS"]);
        assert!(
            targets["miner-worker"].contains(&format!("{w}:{metrics_port}")),
            "Prometheus scrapes {w}"
        );
    }

    // Prometheus mounts the rules it names; Alertmanager is where Prometheus sends alerts and
    // sends them to a service that exists.
    let prom_mounts = c["services"]["prometheus"]["volumes"]
        .as_sequence()
        .unwrap();
    for rule_file in prom["rule_files"].as_sequence().unwrap() {
        let f = rule_file.as_str().unwrap();
        assert!(
            prom_mounts.iter().any(|m| m
                .as_str()
                .unwrap()
                .ends_with(&format!("/etc/prometheus/{f}:ro"))),
            "{f} mounted"
        );
    }
    let am_target = prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"][0]
        .as_str()
        .unwrap();
    assert_eq!(am_target, "alertmanager:9093");
    assert!(services.contains_key("alertmanager"));
    let am = yaml("monitoring/alertmanager.yml");
    let url = am["receivers"][0]["webhook_configs"][0]["url"]
        .as_str()
        .unwrap();
    let host = url.split("//").nth(1).unwrap().split(':').next().unwrap();
    assert!(
        services.contains_key(host),
        "the webhook host {host} is a compose service"
    );
    let receiver_cmd = serde_yaml::to_string(&c["services"][host]["command"]).unwrap();
    assert!(receiver_cmd.contains(&port_of(url.trim_end_matches("/alerts")).to_string()));

    // Grafana gets the provisioning and dashboards the provider points at.
    let g = c["services"]["grafana"]["volumes"].as_sequence().unwrap();
    let prov = yaml("monitoring/grafana/provisioning/dashboards/dashboards.yml");
    let path = prov["providers"][0]["options"]["path"].as_str().unwrap();
    assert!(g
        .iter()
        .any(|v| v.as_str().unwrap().contains(&format!(":{path}"))));
    let ds = yaml("monitoring/grafana/provisioning/datasources/prometheus.yml");
    assert_eq!(
        ds["datasources"][0]["url"].as_str(),
        Some("http://prometheus:9090")
    );

    if let Ok(out) = std::process::Command::new("docker-compose")
        .args([
            "-f",
            repo("docker-compose.yml").to_str().unwrap(),
            "config",
            "-q",
        ])
        .output()
    {
        assert!(
            out.status.success(),
            "docker-compose config: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        eprintln!("docker-compose not installed: schema check skipped (scripts/prepare/monitoring-tools installs it)");
    }
}

#[test]
fn dockerfiles_are_multi_stage_with_a_non_root_runtime() {
    for (file, bin) in [
        ("pool-server/Dockerfile", "pool-server"),
        ("miner-worker/Dockerfile", "miner-worker"),
    ] {
        let text = std::fs::read_to_string(repo(file)).unwrap();
        let stages: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
        assert!(stages.len() >= 2, "{file}: multi-stage");
        let runtime = text.rsplit("\nFROM ").next().unwrap();
        assert!(runtime.contains("slim"), "{file}: small runtime base");
        assert!(
            runtime.contains(&format!("COPY --from=build /src/target/release/{bin}")),
            "{file}: copies the binary"
        );
        let user = runtime
            .lines()
            .find_map(|l| l.strip_prefix("USER "))
            .expect("a USER line");
        assert_ne!(user.trim(), "root", "{file}: runs as non-root");
        assert!(text.contains(&format!("-p {bin}")), "{file}: builds {bin}");
    }
}
