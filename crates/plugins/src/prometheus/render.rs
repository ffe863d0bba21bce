//! Prometheus text exposition (format 0.0.4) of the per-route counters, with the names, help
//! texts, label order and bucket labels of APISIX's exporter
//! (`apisix/plugins/prometheus/exporter.lua` on nginx-lua-prometheus, which prints `le` without
//! padding: `le="5"`), plus Portico's `workspace` label last.
//!
//! Series that differ only in labels a metric does not carry (or that are disabled for it) are
//! summed into one sample.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use super::registry::{Families, Label, Masks, Metric, LATENCY_BUCKETS_MS};
use super::series::{Series, APISIX, REQUEST, UPSTREAM};

/// `request_type` of every request Portico counts (APISIX's `$request_type` default).
const REQUEST_TYPE: &str = "traditional_http";

/// The labels `http_latency` and `bandwidth` are grouped by: route, consumer, node,
/// request_type, workspace.
type Group<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str);

/// The labels of `http_status`: code, route, matched_uri, matched_host, consumer, node,
/// request_type, response_source, workspace.
type StatusGroup<'a> = (
    u16,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
);

fn masked<'a>(masks: &Masks, metric: Metric, label: Label, value: &'a str) -> &'a str {
    if masks.disabled(metric, label) {
        ""
    } else {
        value
    }
}

fn group<'a>(s: &'a Series, node: &'a str, metric: Metric) -> Group<'a> {
    let k = &s.key;
    let m = &k.masks;
    (
        masked(m, metric, Label::Route, &k.route),
        masked(m, metric, Label::Consumer, &k.consumer),
        masked(m, metric, Label::Node, node),
        masked(m, metric, Label::RequestType, REQUEST_TYPE),
        &k.workspace,
    )
}

pub(super) fn render(series: &[Arc<Series>], prefix: &str) -> Families {
    let nodes: Vec<String> = series
        .iter()
        .map(|s| s.key.node.map(|ip| ip.to_string()).unwrap_or_default())
        .collect();
    let mut bandwidth: BTreeMap<Group<'_>, (u64, u64)> = BTreeMap::new();
    let mut latency: BTreeMap<(usize, Group<'_>), ([u64; 16], u64)> = BTreeMap::new();
    let mut status: BTreeMap<StatusGroup<'_>, u64> = BTreeMap::new();
    for (s, node) in series.iter().zip(&nodes) {
        let (i, e) = s.bandwidth();
        let b = bandwidth
            .entry(group(s, node, Metric::Bandwidth))
            .or_default();
        *b = (b.0 + i, b.1 + e);
        for kind in [REQUEST, UPSTREAM, APISIX] {
            let (buckets, sum) = s.histogram(kind);
            if buckets.iter().all(|b| *b == 0) {
                continue;
            }
            let h = latency
                .entry((kind, group(s, node, Metric::HttpLatency)))
                .or_insert(([0; 16], 0));
            for (t, b) in h.0.iter_mut().zip(buckets) {
                *t += b;
            }
            h.1 += sum;
        }
        let k = &s.key;
        let m = &k.masks;
        let st = Metric::HttpStatus;
        *status
            .entry((
                k.code,
                masked(m, st, Label::Route, &k.route),
                masked(m, st, Label::MatchedUri, &k.matched_uri),
                masked(m, st, Label::MatchedHost, &k.matched_host),
                masked(m, st, Label::Consumer, &k.consumer),
                masked(m, st, Label::Node, node),
                masked(m, st, Label::RequestType, REQUEST_TYPE),
                masked(m, st, Label::ResponseSource, k.source.as_str()),
                &k.workspace,
            ))
            .or_default() += s.count();
    }

    let mut out = Families::default();
    let b = &mut out.bandwidth;
    header(
        b,
        prefix,
        "bandwidth",
        "counter",
        "Total bandwidth in bytes consumed per service in APISIX",
    );
    for (group, (ingress, egress)) in &bandwidth {
        for (kind, value) in [("egress", egress), ("ingress", ingress)] {
            let _ = write!(b, "{prefix}bandwidth{{type=\"{kind}\",");
            group_labels(b, group);
            let _ = writeln!(b, "}} {value}");
        }
    }

    let l = &mut out.http_latency;
    header(
        l,
        prefix,
        "http_latency",
        "histogram",
        "HTTP request latency in milliseconds per service in APISIX",
    );
    for ((kind, group), (buckets, sum_us)) in &latency {
        let kind = ["request", "upstream", "apisix"][*kind];
        let mut labels = format!("type=\"{kind}\",");
        group_labels(&mut labels, group);
        let mut cumulative = 0u64;
        for (i, count) in buckets.iter().enumerate() {
            cumulative += count;
            let le = LATENCY_BUCKETS_MS
                .get(i)
                .map_or_else(|| "+Inf".to_string(), u64::to_string);
            let _ = writeln!(
                l,
                "{prefix}http_latency_bucket{{{labels},le=\"{le}\"}} {cumulative}"
            );
        }
        let sum_ms = *sum_us as f64 / 1000.0;
        let _ = writeln!(l, "{prefix}http_latency_sum{{{labels}}} {sum_ms}");
        let _ = writeln!(l, "{prefix}http_latency_count{{{labels}}} {cumulative}");
    }

    let st = &mut out.http_status;
    header(
        st,
        prefix,
        "http_status",
        "counter",
        "HTTP status codes per service in APISIX",
    );
    for ((code, route, uri, host, consumer, node, request_type, source, ws), count) in &status {
        let _ = write!(st, "{prefix}http_status{{code=\"{code}\",route=\"");
        escape(st, route);
        st.push_str("\",matched_uri=\"");
        escape(st, uri);
        st.push_str("\",matched_host=\"");
        escape(st, host);
        st.push_str("\",service=\"\",consumer=\"");
        escape(st, consumer);
        let _ = write!(
            st,
            "\",node=\"{node}\",request_type=\"{request_type}\",request_llm_model=\"\",\
             llm_model=\"\",response_source=\"{source}\",workspace=\""
        );
        escape(st, ws);
        let _ = writeln!(st, "\"}} {count}");
    }
    out
}

fn header(out: &mut String, prefix: &str, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {prefix}{name} {help}");
    let _ = writeln!(out, "# TYPE {prefix}{name} {kind}");
}

/// `route="..",service="",consumer="..",node="..",request_type="..",request_llm_model="",
/// llm_model="",workspace=".."` (no trailing comma).
fn group_labels(out: &mut String, (route, consumer, node, request_type, ws): &Group<'_>) {
    out.push_str("route=\"");
    escape(out, route);
    out.push_str("\",service=\"\",consumer=\"");
    escape(out, consumer);
    let _ = write!(
        out,
        "\",node=\"{node}\",request_type=\"{request_type}\",request_llm_model=\"\",\
         llm_model=\"\",workspace=\""
    );
    escape(out, ws);
    out.push('"');
}

/// A label value as the exposition format wants it: `\`, `"` and newlines escaped.
pub fn escape(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}
