use super::*;

fn nodes(n: usize) -> Vec<Node> {
    (0..n)
        .map(|i| Node::new(format!("10.0.0.{i}"), 80, 1))
        .collect()
}

fn idx(i: usize) -> NodeIndex {
    NodeIndex::new(i).expect("small index")
}

fn state(table: &HealthTable, i: usize) -> State {
    table.status(idx(i)).expect("tracked node").state
}

#[test]
fn active_failures_eject_and_successes_readmit() {
    let table = HealthTable::new(&nodes(2), HealthConfig::default());
    // Default active thresholds: 5 HTTP failures out, 2 successes back in.
    for _ in 0..4 {
        assert_eq!(table.report_active(idx(0), Outcome::Status(500)), None);
    }
    assert_eq!(state(&table, 0), State::MostlyHealthy);
    assert!(table.is_healthy(idx(0)));
    assert_eq!(
        table.report_active(idx(0), Outcome::Status(503)),
        Some(Transition::BecameUnhealthy)
    );
    assert!(!table.is_healthy(idx(0)));
    assert_eq!(table.unhealthy_count(), 1);
    // Further failures are not counted while fully unhealthy.
    assert_eq!(table.report_active(idx(0), Outcome::TcpFailure), None);
    assert_eq!(table.status(idx(0)).map(|s| s.tcp_failures), Some(0));

    assert_eq!(table.report_active(idx(0), Outcome::Status(200)), None);
    assert_eq!(state(&table, 0), State::MostlyUnhealthy);
    assert!(!table.is_healthy(idx(0)));
    assert_eq!(
        table.report_active(idx(0), Outcome::Success),
        Some(Transition::BecameHealthy)
    );
    assert!(table.is_healthy(idx(0)));
    assert_eq!(table.unhealthy_count(), 0);
}

#[test]
fn counts_are_consecutive() {
    let table = HealthTable::new(&nodes(1), HealthConfig::default());
    for _ in 0..4 {
        table.report_active(idx(0), Outcome::Status(502));
    }
    // A success clears the failure counters (and still needs 2 to be fully healthy again).
    table.report_active(idx(0), Outcome::Status(302));
    let status = table.status(idx(0)).expect("tracked");
    assert_eq!((status.http_failures, status.successes), (0, 1));
    assert_eq!(status.state, State::MostlyHealthy);
    for _ in 0..4 {
        table.report_active(idx(0), Outcome::Status(502));
    }
    assert!(
        table.is_healthy(idx(0)),
        "4 + 4 failures are not 5 in a row"
    );
    assert_eq!(table.status(idx(0)).map(|s| s.successes), Some(0));
    table.report_active(idx(0), Outcome::Status(502));
    assert!(!table.is_healthy(idx(0)));
}

#[test]
fn each_failure_kind_has_its_own_threshold() {
    let cfg = HealthConfig::default();
    let table = HealthTable::new(&nodes(3), cfg);
    // Passive: 2 TCP failures, 7 timeouts, 5 HTTP failures among [429, 500, 503].
    table.report_passive(idx(0), Outcome::TcpFailure);
    assert!(table.is_healthy(idx(0)));
    table.report_passive(idx(0), Outcome::TcpFailure);
    assert!(!table.is_healthy(idx(0)));

    for i in 1..=7 {
        let t = table.report_passive(idx(1), Outcome::Timeout);
        assert_eq!(t.is_some(), i == 7, "timeout {i}");
    }

    // 502 is not an unhealthy passive status, 418 is in neither list: both ignored.
    for _ in 0..10 {
        assert_eq!(table.report_passive(idx(2), Outcome::Status(502)), None);
        assert_eq!(table.report_passive(idx(2), Outcome::Status(418)), None);
    }
    assert_eq!(state(&table, 2), State::Healthy);
    // Status 0 (no parsable response) counts as an HTTP failure.
    table.report_passive(idx(2), Outcome::Status(0));
    assert_eq!(table.status(idx(2)).map(|s| s.http_failures), Some(1));
}

#[test]
fn zero_thresholds_disable_their_counter() {
    let mut cfg = HealthConfig::default();
    cfg.passive.timeouts = 0;
    cfg.passive.successes = 0;
    let table = HealthTable::new(&nodes(1), cfg);
    for _ in 0..50 {
        assert_eq!(table.report_passive(idx(0), Outcome::Timeout), None);
    }
    assert_eq!(state(&table, 0), State::Healthy);
    table.set_healthy(idx(0), false);
    assert_eq!(table.report_passive(idx(0), Outcome::Status(200)), None);
    assert!(!table.is_healthy(idx(0)), "passive successes disabled");
}

#[test]
fn all_unhealthy_is_tracked() {
    let table = HealthTable::new(&nodes(2), HealthConfig::default());
    assert!(!table.all_unhealthy());
    assert_eq!(
        table.set_healthy(idx(0), false),
        Some(Transition::BecameUnhealthy)
    );
    assert!(!table.all_unhealthy());
    assert_eq!(
        table.set_healthy(idx(1), false),
        Some(Transition::BecameUnhealthy)
    );
    assert!(table.all_unhealthy());
    assert_eq!(table.set_healthy(idx(1), false), None);
    assert_eq!(
        table.set_healthy(idx(1), true),
        Some(Transition::BecameHealthy)
    );
    assert!(!table.all_unhealthy());
    assert!(!HealthTable::new(&[], HealthConfig::default()).all_unhealthy());
}

#[test]
fn unknown_nodes_are_healthy_and_ignored() {
    let table = HealthTable::new(&nodes(1), HealthConfig::default());
    assert!(table.is_healthy(idx(5)));
    assert_eq!(table.report_active(idx(5), Outcome::TcpFailure), None);
    assert_eq!(table.status(idx(5)), None);
}

#[test]
fn carry_over_keeps_the_table_when_nothing_changed() {
    let list = nodes(3);
    let table = HealthTable::new(&list, HealthConfig::default());
    table.set_healthy(idx(1), false);
    let same = HealthTable::carry_over(&table, &list, HealthConfig::default());
    assert!(Arc::ptr_eq(&table, &same));

    // A node added in front: a new table, state follows the address, not the index.
    let mut grown = vec![Node::new("10.0.0.9", 80, 1)];
    grown.extend(list.iter().cloned());
    let next = HealthTable::carry_over(&table, &grown, HealthConfig::default());
    assert!(!Arc::ptr_eq(&table, &next));
    assert!(next.is_healthy(idx(0)) && !next.is_healthy(idx(2)));
    assert_eq!(next.unhealthy_count(), 1);

    // Same nodes, new thresholds: a new table with the same state.
    let mut cfg = HealthConfig::default();
    cfg.active.successes = 1;
    let retuned = HealthTable::carry_over(&table, &list, cfg);
    assert!(!Arc::ptr_eq(&table, &retuned));
    assert!(!retuned.is_healthy(idx(1)));
    assert_eq!(
        retuned.report_active(idx(1), Outcome::Success),
        Some(Transition::BecameHealthy)
    );
}

#[test]
fn concurrent_reports_keep_the_count_exact() {
    let table = HealthTable::new(&nodes(8), HealthConfig::default());
    std::thread::scope(|s| {
        for t in 0..4 {
            let table = &table;
            s.spawn(move || {
                for round in 0..2_000 {
                    let node = idx((t + round) % 8);
                    let outcome = if round % 3 == 0 {
                        Outcome::Success
                    } else {
                        Outcome::TcpFailure
                    };
                    table.report_active(node, outcome);
                }
            });
        }
    });
    let unhealthy = (0..8).filter(|&i| !table.is_healthy(idx(i))).count();
    assert_eq!(table.unhealthy_count(), unhealthy);
}
