//! The node's text exposition (format 0.0.4): families in APISIX's (alphabetical) order, the
//! per-route families rendered by the prometheus plugin's registry.

use std::fmt::Write;

use portico_snapshot::runtime::prometheus::escape;

use super::StoreStatus;
use crate::Gateway;

pub(super) fn render(
    gateway: &Gateway,
    store: &StoreStatus,
    hostname: &str,
    prefix: &str,
) -> String {
    let snapshot = gateway.snapshot();
    let routes = snapshot.plugins.state.prometheus.render(prefix);
    let metrics = gateway.metrics();
    let mut out = String::with_capacity(
        1024 + routes.bandwidth.len() + routes.http_latency.len() + routes.http_status.len(),
    );
    out.push_str(&routes.bandwidth);

    header(
        &mut out,
        prefix,
        "etcd_modify_indexes",
        "gauge",
        "Etcd modify index for APISIX keys",
    );
    let max = |it: &mut dyn Iterator<Item = i64>| it.max().unwrap_or(0);
    let routes_index = max(&mut snapshot.routes.values().map(|r| r.mod_revision));
    let upstreams_index = max(&mut snapshot
        .upstreams
        .iter()
        .filter(|(key, _)| key.contains("/upstreams/"))
        .map(|(_, u)| u.mod_revision));
    let ssls_index = max(&mut snapshot.certs.values().map(|(rev, _, _)| *rev));
    let mut indexes = vec![
        ("max_modify_index", snapshot.revision),
        ("protos", 0),
        ("routes", routes_index),
        ("services", 0),
        ("ssls", ssls_index),
        ("stream_routes", 0),
        ("upstreams", upstreams_index),
    ];
    if let Some(revision) = store.revision {
        indexes.push(("x_etcd_index", revision));
    }
    for (key, value) in indexes {
        let _ = writeln!(out, "{prefix}etcd_modify_indexes{{key=\"{key}\"}} {value}");
    }

    if let Some(reachable) = store.reachable {
        header(
            &mut out,
            prefix,
            "etcd_reachable",
            "gauge",
            "Config server etcd reachable from APISIX, 0 is unreachable",
        );
        let _ = writeln!(out, "{prefix}etcd_reachable {}", u8::from(reachable));
    }

    out.push_str(&routes.http_latency);

    header(
        &mut out,
        prefix,
        "http_requests_total",
        "gauge",
        "The total number of client requests since APISIX started",
    );
    let _ = writeln!(
        out,
        "{prefix}http_requests_total {}",
        metrics.requests_total()
    );

    out.push_str(&routes.http_status);

    let c = metrics.connections();
    header(
        &mut out,
        prefix,
        "nginx_http_current_connections",
        "gauge",
        "Number of HTTP connections",
    );
    let waiting = c.active.saturating_sub(c.writing);
    for (state, value) in [
        ("accepted", c.accepted),
        ("active", c.active),
        ("handled", c.accepted),
        ("reading", 0),
        ("waiting", waiting),
        ("writing", c.writing),
    ] {
        let _ = writeln!(
            out,
            "{prefix}nginx_http_current_connections{{state=\"{state}\"}} {value}"
        );
    }

    header(
        &mut out,
        prefix,
        "node_info",
        "gauge",
        "Info of APISIX node",
    );
    let _ = write!(out, "{prefix}node_info{{hostname=\"");
    escape(&mut out, hostname);
    let _ = writeln!(out, "\",version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));
    out
}

fn header(out: &mut String, prefix: &str, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {prefix}{name} {help}");
    let _ = writeln!(out, "# TYPE {prefix}{name} {kind}");
}
