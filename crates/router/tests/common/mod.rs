//! Helpers shared by the router tests: short route specs and requests.

#![allow(dead_code)]

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;

use portico_expr::{Expr, Vars};
use portico_router::{Request, RouteSpec, Router};

/// A route named `id` on `uri`.
pub fn route(id: &'static str, uri: &str) -> RouteSpec<&'static str> {
    RouteSpec {
        uris: vec![uri.to_string()],
        ..RouteSpec::new(id)
    }
}

/// Builder-style tweaks for test routes.
pub trait Tweak {
    fn priority(self, priority: i64) -> Self;
    fn hosts(self, hosts: &[&str]) -> Self;
    fn methods(self, methods: &[&str]) -> Self;
    fn remote_addrs(self, addrs: &[&str]) -> Self;
    fn vars(self, rule: serde_json::Value) -> Self;
    fn uris(self, uris: &[&str]) -> Self;
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

impl Tweak for RouteSpec<&'static str> {
    fn priority(mut self, priority: i64) -> Self {
        self.priority = priority;
        self
    }
    fn hosts(mut self, hosts: &[&str]) -> Self {
        self.hosts = strings(hosts);
        self
    }
    fn methods(mut self, methods: &[&str]) -> Self {
        self.methods = strings(methods);
        self
    }
    fn remote_addrs(mut self, addrs: &[&str]) -> Self {
        self.remote_addrs = strings(addrs);
        self
    }
    fn vars(mut self, rule: serde_json::Value) -> Self {
        self.vars = Some(Expr::compile(&rule).unwrap_or_else(|e| panic!("{rule}: {e}")));
        self
    }
    fn uris(mut self, uris: &[&str]) -> Self {
        self.uris = strings(uris);
        self
    }
}

pub fn router(routes: Vec<RouteSpec<&'static str>>) -> Router<&'static str> {
    Router::build(routes).unwrap_or_else(|e| panic!("build failed: {e}"))
}

/// Request variables for `vars` rules.
#[derive(Default)]
pub struct TestVars(pub HashMap<String, String>);

impl Vars for TestVars {
    fn var(&self, name: &str) -> Option<Cow<'_, str>> {
        self.0.get(name).map(|v| Cow::Borrowed(v.as_str()))
    }
}

/// A request; build it with [`Req::get`] and friends, then [`Req::on`].
pub struct Req {
    pub method: &'static str,
    pub host: &'static str,
    pub path: &'static str,
    pub addr: IpAddr,
    pub vars: TestVars,
}

impl Req {
    pub fn new(method: &'static str, path: &'static str) -> Req {
        Req {
            method,
            host: "x.org",
            path,
            addr: IpAddr::from([127, 0, 0, 1]),
            vars: TestVars::default(),
        }
    }

    pub fn get(path: &'static str) -> Req {
        Req::new("GET", path)
    }

    pub fn host(mut self, host: &'static str) -> Req {
        self.host = host;
        self
    }

    pub fn from(mut self, addr: &str) -> Req {
        self.addr = addr.parse().unwrap_or_else(|e| panic!("{addr}: {e}"));
        self
    }

    pub fn var(mut self, name: &str, value: &str) -> Req {
        self.vars.0.insert(name.to_string(), value.to_string());
        self
    }

    /// The id of the route that matched, if any.
    pub fn on(&self, router: &Router<&'static str>) -> Option<&'static str> {
        router.find(&self.request()).map(|m| *m.route)
    }

    pub fn request(&self) -> Request<'_> {
        Request {
            host: self.host,
            path: self.path,
            method: self.method,
            remote_addr: self.addr,
            vars: &self.vars,
        }
    }
}
