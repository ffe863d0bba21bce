//! A strict reader of Prometheus text exposition format (0.0.4), enough to check what the
//! gateway renders: `# HELP` / `# TYPE` lines, `name{label="value",...} value` samples with
//! escaped label values; every sample's family typed before it appears, and each histogram's
//! buckets ordered by `le`, cumulative, and ending in `+Inf` equal to `_count`.

use std::collections::{BTreeMap, HashMap};

/// One sample line.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed exposition.
#[derive(Debug, Default)]
pub struct Exposition {
    /// Family name → `counter`, `gauge`, `histogram`, ...
    pub types: HashMap<String, String>,
    pub samples: Vec<Sample>,
}

impl Exposition {
    /// The sum of the samples named `name` whose labels include `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name && has(s, labels))
            .map(|s| s.value)
            .sum()
    }

    /// The value of the one sample named `name` with exactly `labels`.
    pub fn exact(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<_> = self
            .samples
            .iter()
            .filter(|s| s.name == name && s.labels.len() == labels.len() && has(s, labels))
            .collect();
        assert!(found.len() <= 1, "{name} {labels:?} appears twice");
        found.first().map(|s| s.value)
    }
}

fn has(s: &Sample, labels: &[(&str, &str)]) -> bool {
    labels
        .iter()
        .all(|(k, v)| s.labels.get(*k).is_some_and(|have| have == v))
}

/// Parses `text`, panicking on anything a Prometheus server would refuse.
pub fn parse(text: &str) -> Exposition {
    let mut out = Exposition::default();
    let mut seen_families: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            assert!(is_metric_name(name), "bad name in {line:?}");
            assert!(!help.is_empty(), "empty help: {line:?}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(is_metric_name(name), "bad name in {line:?}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line:?}"
            );
            assert!(
                !seen_families.contains(&name.to_string()),
                "TYPE after samples: {line:?}"
            );
            let old = out.types.insert(name.to_string(), kind.to_string());
            assert!(old.is_none(), "TYPE twice: {line:?}");
        } else if line.starts_with('#') {
            continue;
        } else {
            let sample = sample(line);
            let family = family(&out.types, &sample.name);
            assert!(out.types.contains_key(&family), "untyped sample {line:?}");
            if seen_families.last() != Some(&family) {
                assert!(!seen_families.contains(&family), "family split: {line:?}");
                seen_families.push(family);
            }
            out.samples.push(sample);
        }
    }
    check_histograms(&out);
    out
}

fn family(types: &HashMap<String, String>, name: &str) -> String {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if types.get(base).is_some_and(|t| t == "histogram") {
                return base.to_string();
            }
        }
    }
    name.to_string()
}

fn sample(line: &str) -> Sample {
    let name_end = line
        .find(['{', ' '])
        .unwrap_or_else(|| panic!("no value: {line:?}"));
    let name = &line[..name_end];
    assert!(is_metric_name(name), "bad name in {line:?}");
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        loop {
            match chars.peek() {
                Some((_, '}')) => break,
                Some(_) => {}
                None => panic!("unclosed labels: {line:?}"),
            }
            let start = chars.peek().map(|(i, _)| *i).unwrap_or_default();
            let eq = body[start..].find('=').expect("label =") + start;
            let key = &body[start..eq];
            assert!(is_label_name(key), "bad label name {key:?} in {line:?}");
            while chars.peek().is_some_and(|(i, _)| *i <= eq) {
                chars.next();
            }
            assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line:?}");
            let mut value = String::new();
            loop {
                match chars.next().map(|(_, c)| c) {
                    Some('\\') => match chars.next().map(|(_, c)| c) {
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        Some('n') => value.push('\n'),
                        other => panic!("bad escape {other:?} in {line:?}"),
                    },
                    Some('"') => break,
                    Some('\n') | None => panic!("unterminated label value: {line:?}"),
                    Some(c) => value.push(c),
                }
            }
            assert!(
                labels.insert(key.to_string(), value).is_none(),
                "label twice: {line:?}"
            );
            match chars.peek().map(|(_, c)| *c) {
                Some(',') => {
                    chars.next();
                }
                Some('}') => {}
                other => panic!("expected , or }} got {other:?}: {line:?}"),
            }
        }
        let close = chars.next().map(|(i, _)| i).expect("}");
        rest = &body[close + 1..];
    }
    let mut fields = rest.trim_start_matches(' ').split(' ');
    let value = fields.next().expect("value");
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v
            .parse()
            .unwrap_or_else(|_| panic!("bad value {v:?} in {line:?}")),
    };
    if let Some(ts) = fields.next() {
        ts.parse::<i64>()
            .unwrap_or_else(|_| panic!("bad timestamp in {line:?}"));
    }
    assert!(fields.next().is_none(), "trailing text: {line:?}");
    Sample {
        name: name.to_string(),
        labels,
        value,
    }
}

/// A histogram's name and labels other than `le`.
type HistogramId = (String, Vec<(String, String)>);

fn check_histograms(e: &Exposition) {
    let mut series: BTreeMap<HistogramId, Vec<(f64, f64)>> = BTreeMap::new();
    for s in &e.samples {
        let Some(base) = s.name.strip_suffix("_bucket") else {
            continue;
        };
        if e.types.get(base).map(String::as_str) != Some("histogram") {
            continue;
        }
        let le = s.labels.get("le").expect("bucket without le");
        let le: f64 = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().expect("le")
        };
        let rest = s
            .labels
            .iter()
            .filter(|(k, _)| *k != "le")
            .map(|(k, v)| (k.clone(), v.clone()));
        series
            .entry((base.to_string(), rest.collect()))
            .or_default()
            .push((le, s.value));
    }
    for ((base, labels), buckets) in series {
        assert!(
            buckets
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
            "{base} {labels:?}"
        );
        let (last_le, last) = *buckets.last().expect("a bucket");
        assert!(last_le.is_infinite(), "{base} {labels:?} lacks +Inf");
        let find = |suffix: &str| {
            e.samples
                .iter()
                .find(|s| {
                    s.name == format!("{base}{suffix}")
                        && s.labels
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .eq(labels.iter().cloned())
                })
                .map(|s| s.value)
        };
        assert_eq!(
            find("_count"),
            Some(last),
            "{base} {labels:?}: +Inf != _count"
        );
        assert!(find("_sum").is_some(), "{base} {labels:?} lacks _sum");
    }
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
