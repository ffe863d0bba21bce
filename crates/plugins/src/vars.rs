//! Request variables of a [`Ctx`] (APISIX `ctx.var`, reference §3.6), read lazily: `_meta.filter`
//! rules, `$var` templates and limit-count keys all read through [`Vars`].
//!
//! Supported: `uri`, `host`, `request_method`, `request_uri` (the current target, query
//! included), `real_request_uri` (as received), `query_string`/`args`, `is_args`, `remote_addr`,
//! `remote_port`, `server_port`, `scheme`, `server_protocol`, `http_<name>`, `arg_<name>`,
//! `cookie_<name>`, `route_id`, `route_name`, `consumer_name`, `consumer_group_id`,
//! `upstream_uri`, `upstream_host`, `status` (once a response exists), and anything set with
//! [`Ctx::set_var`], which wins over the computed value.

use std::borrow::Cow;

use portico_expr::Vars;

use crate::ctx::Ctx;

impl Ctx {
    fn header_var(&self, rest: &str) -> Option<Cow<'_, str>> {
        // `http_x_custom_header` names the header `x-custom-header`.
        let wanted = rest.replace('_', "-").to_ascii_lowercase();
        self.headers
            .get(wanted.as_str())
            .and_then(|v| v.to_str().ok())
            .map(Cow::Borrowed)
    }

    fn cookie_var(&self, name: &str) -> Option<Cow<'_, str>> {
        self.headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| Cow::Borrowed(v))
    }
}

impl Vars for Ctx {
    fn var(&self, name: &str) -> Option<Cow<'_, str>> {
        if let Some(v) = self.var_override(name) {
            return Some(Cow::Borrowed(v));
        }
        if let Some(h) = name.strip_prefix("http_") {
            return self.header_var(h);
        }
        if let Some(a) = name.strip_prefix("arg_") {
            return self.query_arg(a);
        }
        if let Some(c) = name.strip_prefix("cookie_") {
            return self.cookie_var(c);
        }
        let value = match name {
            "uri" => Cow::Borrowed(self.path.as_str()),
            "host" => Cow::Borrowed(self.host.as_str()),
            "request_method" => Cow::Borrowed(self.method.as_str()),
            "request_uri" => Cow::Borrowed(self.uri.path_and_query().map_or("/", |pq| pq.as_str())),
            "real_request_uri" => Cow::Borrowed(self.real_request_uri()),
            "query_string" | "args" => {
                let q = self.query();
                if q.is_empty() {
                    return None;
                }
                Cow::Borrowed(q)
            }
            "is_args" => Cow::Borrowed(if self.query().is_empty() { "" } else { "?" }),
            "remote_addr" => {
                let mut text = String::with_capacity(15);
                crate::ip_text::push_ip(self.remote.ip(), &mut text);
                Cow::Owned(text)
            }
            "remote_port" => Cow::Owned(self.remote.port().to_string()),
            "server_port" => Cow::Owned(self.server_port.to_string()),
            "scheme" => Cow::Borrowed(self.scheme),
            "server_protocol" => Cow::Borrowed(match self.version {
                http::Version::HTTP_10 => "HTTP/1.0",
                http::Version::HTTP_2 => "HTTP/2.0",
                _ => "HTTP/1.1",
            }),
            "route_id" if !self.route_id.is_empty() => Cow::Borrowed(&*self.route_id),
            "route_name" => Cow::Borrowed(self.route_name.as_deref()?),
            "consumer_name" => Cow::Borrowed(self.consumer.as_ref()?.username.as_str()),
            "consumer_group_id" => Cow::Borrowed(self.consumer.as_ref()?.group_id()?),
            "upstream_uri" => Cow::Borrowed(self.upstream_uri.as_deref()?),
            "upstream_host" => Cow::Borrowed(self.upstream_host.as_deref()?),
            "status" => Cow::Owned(self.response.as_ref()?.status.as_u16().to_string()),
            _ => return None,
        };
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(uri: &str) -> Ctx {
        let req = http::Request::builder()
            .method("POST")
            .uri(uri)
            .header("Host", "Example.COM:8080")
            .header("X-Custom-Header", "v")
            .header("cookie", "s=1; t=two")
            .body(())
            .unwrap_or_default();
        Ctx::from_request(&req, "10.0.0.1:5555".parse().expect("addr"))
    }

    #[test]
    fn request_variables() {
        let mut c = ctx("/p?a=1&b=x%20y&c=+z&bare");
        let v = |c: &Ctx, n: &str| c.var(n).map(|v| v.into_owned());
        assert_eq!(v(&c, "host").as_deref(), Some("example.com"));
        assert_eq!(v(&c, "uri").as_deref(), Some("/p"));
        assert_eq!(v(&c, "request_method").as_deref(), Some("POST"));
        assert_eq!(v(&c, "http_x_custom_header").as_deref(), Some("v"));
        assert_eq!(v(&c, "arg_b").as_deref(), Some("x y"));
        assert_eq!(v(&c, "arg_c").as_deref(), Some(" z"));
        assert_eq!(v(&c, "arg_bare").as_deref(), Some(""));
        assert_eq!(v(&c, "arg_none"), None);
        assert_eq!(v(&c, "cookie_t").as_deref(), Some("two"));
        assert_eq!(v(&c, "remote_addr").as_deref(), Some("10.0.0.1"));
        assert_eq!(v(&c, "is_args").as_deref(), Some("?"));
        assert_eq!(v(&c, "route_id"), None);
        assert_eq!(v(&c, "consumer_name"), None);
        c.set_var("uri", "/over");
        assert_eq!(v(&c, "uri").as_deref(), Some("/over"));
        assert_eq!(c.real_request_uri(), "/p?a=1&b=x%20y&c=+z&bare");
        assert!(c.remove_query_arg("b"));
        assert_eq!(v(&c, "request_uri").as_deref(), Some("/p?a=1&c=+z&bare"));
        assert_eq!(c.real_request_uri(), "/p?a=1&b=x%20y&c=+z&bare");
        assert!(!c.remove_query_arg("b"));
        assert!(c.remove_query_arg("a") && c.remove_query_arg("c") && c.remove_query_arg("bare"));
        assert_eq!(v(&c, "request_uri").as_deref(), Some("/p"));
        assert_eq!(c.real_request_uri(), "/p?a=1&b=x%20y&c=+z&bare");
        assert_eq!(v(&c, "is_args").as_deref(), Some(""));
    }

    #[test]
    fn header_helpers() {
        let mut c = ctx("/");
        assert!(c.set_header("X-A", Some("1")));
        assert!(c.add_header("x-a", "2"));
        assert_eq!(c.headers.get_all("x-a").iter().count(), 2);
        assert!(!c.set_header("bad name", Some("x")));
        assert!(!c.set_header("X-B", Some("a\nb")));
        assert!(c.set_header("X-A", None));
        assert_eq!(c.header("x-a"), None);
        c.set_response_header("X-R", "1");
        assert_eq!(c.response_headers["x-r"], "1");
    }
}
