//! The engine's unit tests: workers watched from their first session, accounts as one, workers
//! forgotten after a week away.

use super::*;

fn offline_alerts(e: &mut Engine, stats: &Stats, looks: usize) -> Vec<Alert> {
    let now = Utc::now();
    (0..looks)
        .flat_map(|_| e.look(stats, now, Duration::from_secs(1)))
        .filter(|a| a.rule == Rule::WorkerOffline && a.state == AlertState::Firing)
        .collect()
}

/// Rules with a 3 s grace, and statistics where alice.rig1 came and went before a look.
fn came_and_went() -> (Engine, Stats) {
    let e = Engine::new(WatchConfig {
        disconnect_grace: Duration::from_secs(3),
        ..WatchConfig::default()
    });
    let stats = Stats::new();
    stats.session_opened("alice.rig1", Utc::now());
    stats.session_closed("alice.rig1");
    (e, stats)
}

/// `per_look` shares of difficulty 1 for each of `workers`, for `looks` looks 10 s apart
/// from `t`; the alerts of those looks and the time after them.
fn mine(
    e: &mut Engine,
    stats: &Stats,
    workers: &[&str],
    per_look: u32,
    looks: usize,
    mut t: DateTime<Utc>,
) -> (Vec<(usize, Alert)>, DateTime<Utc>) {
    let mut alerts = Vec::new();
    for i in 0..looks {
        for w in workers {
            for k in 0..per_look {
                stats.accepted(w, 1.0, t + chrono::Duration::milliseconds(k as i64 * 100));
            }
        }
        t += chrono::Duration::seconds(10);
        alerts.extend(
            e.look(stats, t, Duration::from_secs(10))
                .into_iter()
                .map(|a| (i, a)),
        );
    }
    (alerts, t)
}

#[test]
fn an_account_whose_rigs_each_lose_a_little_is_told_before_any_rig_is() {
    let mut e = Engine::new(WatchConfig::default());
    let stats = Stats::new();
    let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    let rigs = ["dave.r1", "dave.r2", "dave.r3", "dave.r4", "erin.r1"];
    for w in rigs {
        stats.session_opened(w, t0);
        stats.set_difficulty(w, 1.0);
    }
    // Two hours at one share a second each: the baselines.
    let (alerts, t) = mine(&mut e, &stats, &rigs, 10, 720, t0);
    assert!(alerts.is_empty(), "{alerts:?}");
    assert!(e.accounts.contains_key("dave"), "four rigs: watched as one");
    assert!(
        !e.accounts.contains_key("erin"),
        "one rig: its own rules suffice"
    );
    // Each rig loses 40 %: a drop each rig's own test would find only after much longer.
    let (alerts, t) = mine(&mut e, &stats, &rigs, 6, 180, t);
    let first = alerts.first().expect("a drop is told");
    assert_eq!(first.1.rule, Rule::AccountHashrateDropped, "{alerts:?}");
    assert_eq!(first.1.state, AlertState::Firing);
    assert_eq!(first.1.worker, "dave");
    assert_eq!(first.1.account, "dave");
    assert!(first.1.summary.contains("4 workers"), "{}", first.1.summary);
    let worker_drops = alerts
        .iter()
        .filter(|(_, a)| a.rule == Rule::HashrateDropped)
        .map(|(i, _)| *i)
        .min()
        .unwrap_or(usize::MAX);
    assert!(
        first.0 * 2 < worker_drops,
        "the account in half the time of its rigs: {} vs {worker_drops}",
        first.0
    );
    let accounts: Vec<_> = alerts
        .iter()
        .filter(|(_, a)| a.rule == Rule::AccountHashrateDropped)
        .collect();
    assert_eq!(accounts.len(), 1, "told once: {accounts:?}");
    // Back at full rate: resolved.
    let (alerts, _) = mine(&mut e, &stats, &rigs, 10, 180, t);
    let resolved: Vec<_> = alerts
        .iter()
        .filter(|(_, a)| a.rule == Rule::AccountHashrateDropped)
        .collect();
    assert_eq!(resolved.len(), 1, "{resolved:?}");
    assert_eq!(resolved[0].1.state, AlertState::Resolved);
    assert!(e
        .firing()
        .iter()
        .all(|a| a.rule != Rule::AccountHashrateDropped));
}

#[test]
fn a_worker_that_came_and_went_between_two_looks_is_still_reported() {
    let (mut e, stats) = came_and_went();
    let fired = offline_alerts(&mut e, &stats, 5);
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0].worker, "alice.rig1");
}

#[test]
fn a_worker_forgotten_after_a_week_away_is_not_reported_again_until_it_returns() {
    let (mut e, stats) = came_and_went();
    assert_eq!(offline_alerts(&mut e, &stats, 5).len(), 1);
    // A week away: forgotten, and not told again.
    let week = FORGET_AFTER.as_secs() as usize;
    let now = Utc::now();
    for _ in 0..(week / 3600 + 1) {
        e.look(&stats, now, Duration::from_secs(3600));
    }
    assert!(e.workers.is_empty(), "forgotten");
    assert!(offline_alerts(&mut e, &stats, 10).is_empty());
    // Back and gone again: watched, and told.
    stats.session_opened("alice.rig1", Utc::now());
    stats.session_closed("alice.rig1");
    assert_eq!(offline_alerts(&mut e, &stats, 5).len(), 1);
}
