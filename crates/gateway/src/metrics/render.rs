//! Prometheus text exposition (format 0.0.4) of the counters, with the names, help texts,
//! label order and bucket labels of APISIX's exporter (`apisix/plugins/prometheus/exporter.lua`
//! on nginx-lua-prometheus, whose `le` values carry leading zeros: `le="00005.0"`).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::IpAddr;

use super::series::{APISIX, REQUEST, UPSTREAM};
use super::{Metrics, LATENCY_BUCKETS_MS};

/// The labels latency and bandwidth are grouped by: workspace, route, consumer, node.
type Group<'a> = (&'a str, &'a str, &'a str, Option<IpAddr>);

pub(super) fn render(metrics: &Metrics, prefix: &str) -> String {
    let mut series = metrics.series();
    series.sort_by(|a, b| a.key.cmp(&b.key));
    let mut out = String::with_capacity(256 + series.len() * 1024);

    // Bandwidth and latency carry no URI, host or code: sum the series that differ only there.
    let mut bandwidth: BTreeMap<Group<'_>, (u64, u64)> = BTreeMap::new();
    let mut latency: BTreeMap<(usize, Group<'_>), ([u64; 16], u64)> = BTreeMap::new();
    for s in &series {
        let k = &s.key;
        let group = (&*k.workspace, &*k.route, &*k.consumer, k.node);
        let (i, e) = s.bandwidth();
        let b = bandwidth.entry(group).or_default();
        *b = (b.0 + i, b.1 + e);
        for kind in [REQUEST, UPSTREAM, APISIX] {
            let (buckets, sum) = s.histogram(kind);
            if buckets[15] == 0 {
                continue;
            }
            let h = latency.entry((kind, group)).or_insert(([0; 16], 0));
            for (t, b) in h.0.iter_mut().zip(buckets) {
                *t += b;
            }
            h.1 += sum;
        }
    }

    header(
        &mut out,
        prefix,
        "bandwidth",
        "counter",
        "Total bandwidth in bytes consumed per service in APISIX",
    );
    for (group, (ingress, egress)) in &bandwidth {
        for (kind, value) in [("egress", egress), ("ingress", ingress)] {
            let _ = write!(out, "{prefix}bandwidth{{type=\"{kind}\",");
            group_labels(&mut out, group);
            let _ = writeln!(out, "}} {value}");
        }
    }

    header(
        &mut out,
        prefix,
        "http_latency",
        "histogram",
        "HTTP request latency in milliseconds per service in APISIX",
    );
    for ((kind, group), (buckets, sum_us)) in &latency {
        let kind = ["request", "upstream", "apisix"][*kind];
        let mut labels = format!("type=\"{kind}\",");
        group_labels(&mut labels, group);
        for (i, count) in buckets.iter().enumerate() {
            let le = match LATENCY_BUCKETS_MS.get(i) {
                Some(ms) => format!("{:07.1}", *ms as f64),
                None => "+Inf".to_string(),
            };
            let _ = writeln!(
                out,
                "{prefix}http_latency_bucket{{{labels},le=\"{le}\"}} {count}"
            );
        }
        let sum_ms = *sum_us as f64 / 1000.0;
        let _ = writeln!(out, "{prefix}http_latency_sum{{{labels}}} {sum_ms}");
        let _ = writeln!(
            out,
            "{prefix}http_latency_count{{{labels}}} {}",
            buckets[15]
        );
    }

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

    header(
        &mut out,
        prefix,
        "http_status",
        "counter",
        "HTTP status codes per service in APISIX",
    );
    for s in &series {
        let k = &s.key;
        let _ = write!(out, "{prefix}http_status{{code=\"{}\",route=\"", k.code);
        escape(&mut out, &k.route);
        out.push_str("\",matched_uri=\"");
        escape(&mut out, &k.matched_uri);
        out.push_str("\",matched_host=\"");
        escape(&mut out, &k.matched_host);
        out.push_str("\",service=\"\",consumer=\"");
        escape(&mut out, &k.consumer);
        let _ = write!(out, "\",node=\"{}\",workspace=\"", node(k.node));
        escape(&mut out, &k.workspace);
        let _ = writeln!(out, "\"}} {}", s.count());
    }

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
    out
}

fn header(out: &mut String, prefix: &str, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {prefix}{name} {help}");
    let _ = writeln!(out, "# TYPE {prefix}{name} {kind}");
}

/// `route="..",service="",consumer="..",node="..",workspace=".."` (no trailing comma).
fn group_labels(out: &mut String, (workspace, route, consumer, ip): &Group<'_>) {
    out.push_str("route=\"");
    escape(out, route);
    out.push_str("\",service=\"\",consumer=\"");
    escape(out, consumer);
    let _ = write!(out, "\",node=\"{}\",workspace=\"", node(*ip));
    escape(out, workspace);
    out.push('"');
}

fn node(ip: Option<IpAddr>) -> String {
    ip.map(|ip| ip.to_string()).unwrap_or_default()
}

/// A label value as the exposition format wants it: `\`, `"` and newlines escaped.
fn escape(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}
