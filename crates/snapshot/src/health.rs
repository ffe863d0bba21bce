//! `checks` of an upstream as the balancer's health thresholds.

use portico_balancer::health::{StatusSet, Thresholds};
use portico_balancer::HealthConfig;
use portico_model::types::HealthCheck;

fn clamp(n: u32) -> u8 {
    u8::try_from(n).unwrap_or(u8::MAX)
}

/// The thresholds of an upstream's active and passive checks (passive defaults when the
/// upstream has no passive section; the data plane then reports no passive outcomes).
pub fn health_config(checks: &HealthCheck) -> HealthConfig {
    let a = &checks.active;
    let active = Thresholds {
        healthy_statuses: StatusSet::from_codes(&a.healthy.http_statuses),
        successes: clamp(a.healthy.successes),
        unhealthy_statuses: StatusSet::from_codes(&a.unhealthy.http_statuses),
        http_failures: clamp(a.unhealthy.http_failures),
        tcp_failures: clamp(a.unhealthy.tcp_failures),
        timeouts: clamp(a.unhealthy.timeouts),
    };
    let passive = match &checks.passive {
        Some(p) => Thresholds {
            healthy_statuses: StatusSet::from_codes(&p.healthy.http_statuses),
            successes: clamp(p.healthy.successes),
            unhealthy_statuses: StatusSet::from_codes(&p.unhealthy.http_statuses),
            http_failures: clamp(p.unhealthy.http_failures),
            tcp_failures: clamp(p.unhealthy.tcp_failures),
            timeouts: clamp(p.unhealthy.timeouts),
        },
        None => Thresholds::passive_defaults(),
    };
    HealthConfig { active, passive }
}
