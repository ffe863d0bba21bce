//! The consistent-hash key of a request (`upstream.hash_on` + `upstream.key`), as
//! `apisix/balancer/chash.lua:fetch_chash_hash_key` computes it.

use std::borrow::Cow;
use std::fmt;

/// What a `chash` upstream hashes on (`upstream.hash_on`, default `vars`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum HashOn {
    /// `vars`: one request variable named by `key` (`remote_addr`, `uri`, `arg_id`, ...).
    #[default]
    Vars,
    /// `header`: the request header named by `key`.
    Header,
    /// `cookie`: the cookie named by `key`.
    Cookie,
    /// `consumer`: the authenticated consumer's name; `key` is ignored.
    Consumer,
    /// `vars_combinations`: `key` is a template such as `$host$request_uri`.
    VarsCombinations,
}

/// A `hash_on` value APISIX does not define.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown hash_on {0:?}: expected one of vars, header, cookie, consumer, vars_combinations")]
pub struct UnknownHashOn(pub String);

impl HashOn {
    /// Parses a `hash_on` value.
    pub fn parse(s: &str) -> Result<HashOn, UnknownHashOn> {
        match s {
            "vars" => Ok(HashOn::Vars),
            "header" => Ok(HashOn::Header),
            "cookie" => Ok(HashOn::Cookie),
            "consumer" => Ok(HashOn::Consumer),
            "vars_combinations" => Ok(HashOn::VarsCombinations),
            _ => Err(UnknownHashOn(s.to_owned())),
        }
    }

    /// The APISIX name of the source.
    pub fn as_str(self) -> &'static str {
        match self {
            HashOn::Vars => "vars",
            HashOn::Header => "header",
            HashOn::Cookie => "cookie",
            HashOn::Consumer => "consumer",
            HashOn::VarsCombinations => "vars_combinations",
        }
    }
}

impl fmt::Display for HashOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A compiled `hash_on` + `key` pair: built once per upstream, resolved once per request.
///
/// Resolution reads request variables through a lookup closure using nginx/APISIX variable names
/// (the names `portico_expr::Vars` understands): `vars` reads `key` itself, `header` reads
/// `http_<key>` (lower-cased, `-` as `_`), `cookie` reads `cookie_<key>`, `consumer` reads
/// `consumer_name`. When the result is missing or empty the key falls back to `remote_addr`, as
/// APISIX does (with a warning in its log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashKey {
    source: Source,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Source {
    Var(String),
    Template(Vec<Segment>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Var {
        name: String,
        default: Option<String>,
    },
}

impl HashKey {
    /// Compiles `hash_on` + `key` (`key` is ignored for [`HashOn::Consumer`]).
    pub fn new(on: HashOn, key: &str) -> Self {
        let source = match on {
            HashOn::Vars => Source::Var(key.to_owned()),
            HashOn::Header => Source::Var(format!(
                "http_{}",
                key.to_ascii_lowercase().replace('-', "_")
            )),
            HashOn::Cookie => Source::Var(format!("cookie_{key}")),
            HashOn::Consumer => Source::Var("consumer_name".to_owned()),
            HashOn::VarsCombinations => Source::Template(parse_template(key)),
        };
        HashKey { source }
    }

    /// The key of one request. `var` returns a request variable by name, `None` when unset.
    pub fn resolve<'v>(&self, var: impl Fn(&str) -> Option<Cow<'v, str>>) -> Cow<'v, str> {
        let value = match &self.source {
            Source::Var(name) => var(name),
            Source::Template(segments) => render(segments, &var).map(Cow::Owned),
        };
        match value {
            Some(v) if !v.is_empty() => v,
            _ => var("remote_addr").unwrap_or(Cow::Borrowed("")),
        }
    }
}

/// `core.utils.resolve_var`: `$name` (name of `[A-Za-z0-9_.]`) and `${name}` / `${name ?? default}`
/// are variables unless the `$` follows a backslash; everything else is literal. `None` when no
/// variable resolved (APISIX then falls back to `remote_addr`).
fn render<'v>(segments: &[Segment], var: &dyn Fn(&str) -> Option<Cow<'v, str>>) -> Option<String> {
    let mut out = String::new();
    let mut resolved = 0usize;
    for segment in segments {
        match segment {
            Segment::Literal(text) => out.push_str(text),
            Segment::Var { name, default } => {
                if let Some(value) = var(name) {
                    out.push_str(&value);
                    resolved += 1;
                } else if let Some(default) = default {
                    out.push_str(default);
                    resolved += 1;
                }
            }
        }
    }
    (resolved > 0).then_some(out)
}

fn parse_template(tpl: &str) -> Vec<Segment> {
    let bytes = tpl.as_bytes();
    let mut segments = Vec::new();
    let mut literal_from = 0;
    let mut i = 0;
    while i < bytes.len() {
        let escaped = i > 0 && bytes[i - 1] == b'\\';
        let parsed = if bytes[i] == b'$' && !escaped {
            parse_var(tpl, i + 1)
        } else {
            None
        };
        match parsed {
            Some((segment, end)) => {
                if literal_from < i {
                    segments.push(Segment::Literal(tpl[literal_from..i].to_owned()));
                }
                segments.push(segment);
                literal_from = end;
                i = end;
            }
            None => i += 1,
        }
    }
    if literal_from < tpl.len() {
        segments.push(Segment::Literal(tpl[literal_from..].to_owned()));
    }
    segments
}

/// Parses the variable after a `$` at byte `at`; returns it and the byte after it.
fn parse_var(tpl: &str, at: usize) -> Option<(Segment, usize)> {
    let rest = tpl.get(at..)?;
    if let Some(braced) = rest.strip_prefix('{') {
        let close = braced.find('}')?;
        if close == 0 {
            return None;
        }
        let inner = braced[..close].trim();
        let (name, default) = match inner.split_once("??") {
            Some((name, default)) => (name.trim(), Some(default.trim().to_owned())),
            None => (inner, None),
        };
        let segment = Segment::Var {
            name: name.to_owned(),
            default,
        };
        return Some((segment, at + 1 + close + 1));
    }
    let len = rest
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'.')
        .count();
    (len > 0).then(|| {
        let segment = Segment::Var {
            name: rest[..len].to_owned(),
            default: None,
        };
        (segment, at + len)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup<'a>(
        vars: &'a HashMap<&'static str, &'static str>,
    ) -> impl Fn(&str) -> Option<Cow<'static, str>> + 'a {
        move |name| vars.get(name).map(|v| Cow::Owned((*v).to_owned()))
    }

    fn request() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("remote_addr", "10.1.1.1"),
            ("uri", "/orders"),
            ("arg_id", ""),
            ("http_x_user_id", "alice"),
            ("cookie_session", "s-1"),
            ("consumer_name", "jack"),
            ("host", "api.example.com"),
        ])
    }

    #[test]
    fn each_source_reads_its_variable() {
        let vars = request();
        let key = |on, k| HashKey::new(on, k).resolve(lookup(&vars)).into_owned();
        assert_eq!(key(HashOn::Vars, "uri"), "/orders");
        assert_eq!(key(HashOn::Header, "X-User-Id"), "alice");
        assert_eq!(key(HashOn::Cookie, "session"), "s-1");
        assert_eq!(key(HashOn::Consumer, "ignored"), "jack");
        assert_eq!(
            key(HashOn::VarsCombinations, "$host$uri"),
            "api.example.com/orders"
        );
    }

    #[test]
    fn missing_or_empty_keys_fall_back_to_remote_addr() {
        let vars = request();
        let key = |on, k| HashKey::new(on, k).resolve(lookup(&vars)).into_owned();
        assert_eq!(key(HashOn::Vars, "arg_id"), "10.1.1.1", "empty value");
        assert_eq!(key(HashOn::Header, "X-Missing"), "10.1.1.1");
        assert_eq!(key(HashOn::VarsCombinations, "id-$nope-$none"), "10.1.1.1");
        let nothing = |_: &str| None::<Cow<'static, str>>;
        assert_eq!(HashKey::new(HashOn::Vars, "uri").resolve(nothing), "");
    }

    #[test]
    fn templates_follow_resolve_var() {
        let vars = request();
        let key = |k| {
            HashKey::new(HashOn::VarsCombinations, k)
                .resolve(lookup(&vars))
                .into_owned()
        };
        assert_eq!(key("u:${ uri }|$nope|x"), "u:/orders||x");
        assert_eq!(key("${nope ?? anon}-$uri"), "anon-/orders");
        assert_eq!(
            key(r"\$uri-$uri"),
            r"\$uri-/orders",
            "escaped $ stays literal"
        );
        assert_eq!(key("$-${}-$uri$"), "$-${}-/orders$", "bare $ is literal");
        assert_eq!(key("${unclosed $uri"), "${unclosed /orders");
    }

    #[test]
    fn hash_on_parses_apisix_names_only() {
        for on in ["vars", "header", "cookie", "consumer", "vars_combinations"] {
            assert_eq!(HashOn::parse(on).map(HashOn::as_str), Ok(on));
        }
        assert!(HashOn::parse("uri").is_err());
        assert_eq!(HashOn::default(), HashOn::Vars);
    }
}
