//! Request variables (`ctx.var` of APISIX, §3.6) for `vars` rules and hash keys, read lazily from
//! the request: nothing is computed unless a rule asks for it.

use std::borrow::Cow;
use std::net::SocketAddr;

use http::request::Parts;
use portico_expr::Vars;

/// The variables of one request.
pub struct RequestVars<'a> {
    pub parts: &'a Parts,
    /// `$uri`: the normalised path.
    pub uri: &'a str,
    /// `$host`: lower-cased, without port.
    pub host: &'a str,
    pub remote: SocketAddr,
    pub server_port: u16,
    pub scheme: &'static str,
}

impl RequestVars<'_> {
    fn query(&self) -> &str {
        self.parts.uri.query().unwrap_or("")
    }

    fn header(&self, name: &str) -> Option<Cow<'_, str>> {
        // `http_x_custom_header` names the header `x-custom-header`.
        let wanted = name.replace('_', "-");
        self.parts
            .headers
            .iter()
            .find(|(n, _)| n.as_str().eq_ignore_ascii_case(&wanted))
            .and_then(|(_, v)| v.to_str().ok())
            .map(Cow::Borrowed)
    }

    fn arg(&self, name: &str) -> Option<Cow<'_, str>> {
        self.query()
            .split('&')
            .filter_map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (k == name).then_some(v)
            })
            .next()
            .map(decode_component)
    }

    fn cookie(&self, name: &str) -> Option<Cow<'_, str>> {
        self.parts
            .headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| Cow::Borrowed(v))
    }
}

impl Vars for RequestVars<'_> {
    fn var(&self, name: &str) -> Option<Cow<'_, str>> {
        if let Some(h) = name.strip_prefix("http_") {
            return self.header(h);
        }
        if let Some(a) = name.strip_prefix("arg_") {
            return self.arg(a);
        }
        if let Some(c) = name.strip_prefix("cookie_") {
            return self.cookie(c);
        }
        let value = match name {
            "uri" => Cow::Borrowed(self.uri),
            "host" => Cow::Borrowed(self.host),
            "request_method" => Cow::Borrowed(self.parts.method.as_str()),
            "request_uri" => Cow::Borrowed(
                self.parts
                    .uri
                    .path_and_query()
                    .map_or("/", |pq| pq.as_str()),
            ),
            "query_string" | "args" => {
                let q = self.query();
                if q.is_empty() {
                    return None;
                }
                Cow::Borrowed(q)
            }
            "remote_addr" => Cow::Owned(self.remote.ip().to_string()),
            "remote_port" => Cow::Owned(self.remote.port().to_string()),
            "server_port" => Cow::Owned(self.server_port.to_string()),
            "scheme" => Cow::Borrowed(self.scheme),
            "server_protocol" => Cow::Borrowed(match self.parts.version {
                http::Version::HTTP_10 => "HTTP/1.0",
                http::Version::HTTP_2 => "HTTP/2.0",
                _ => "HTTP/1.1",
            }),
            "http_host" => return self.header("host"),
            _ => return None,
        };
        Some(value)
    }
}

/// Percent-decodes a query component (`+` is a space).
fn decode_component(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_headers_args_and_cookies() {
        let req = http::Request::builder()
            .uri("/p?a=1&b=x%20y&c=+z")
            .header("X-Custom-Header", "v")
            .header("cookie", "s=1; t=two")
            .body(())
            .unwrap();
        let (parts, _) = req.into_parts();
        let vars = RequestVars {
            parts: &parts,
            uri: "/p",
            host: "h",
            remote: "127.0.0.1:9".parse().unwrap(),
            server_port: 9080,
            scheme: "http",
        };
        assert_eq!(vars.var("http_x_custom_header").unwrap(), "v");
        assert_eq!(vars.var("arg_b").unwrap(), "x y");
        assert_eq!(vars.var("arg_c").unwrap(), " z");
        assert_eq!(vars.var("arg_none"), None);
        assert_eq!(vars.var("cookie_t").unwrap(), "two");
        assert_eq!(vars.var("request_uri").unwrap(), "/p?a=1&b=x%20y&c=+z");
        assert_eq!(vars.var("remote_addr").unwrap(), "127.0.0.1");
        assert_eq!(vars.var("unknown"), None);
    }
}
