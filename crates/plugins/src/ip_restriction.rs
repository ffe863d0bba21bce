//! ip-restriction: allows or denies clients by address (APISIX priority 3000, access phase;
//! `apisix/plugins/ip-restriction/init.lua`).
//!
//! `$remote_addr` is checked against `blacklist` (blocked when listed) or `whitelist` (blocked
//! when not listed); a blocked client gets `response_code` (403) `{"message":"<message>"}`.
//! IPv4 and IPv6 addresses and CIDRs; an IPv4 client never matches an IPv6 entry.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use http::StatusCode;
use portico_expr::{IpMatcher, Vars};
use portico_model::schemas::defs::ip_def;
use portico_model::PluginSpec;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{typed, BuildEnv, Ctx, Flow, Plugin, Reply};

/// Plugin name.
pub const NAME: &str = "ip-restriction";

/// The registry row of ip-restriction.
pub fn spec() -> PluginSpec {
    let list = json!({"type": "array", "items": {"anyOf": ip_def()}, "minItems": 1});
    PluginSpec {
        check: Some(check),
        ..PluginSpec::new(
            NAME,
            3000,
            json!({
                "type": "object",
                "properties": {
                    "message": {"type": "string", "minLength": 1, "maxLength": 1024, "default": "Your IP address is not allowed"},
                    "response_code": {"type": "integer", "minimum": 403, "maximum": 404, "default": 403},
                    "whitelist": list,
                    "blacklist": list
                },
                "oneOf": [{"required": ["whitelist"]}, {"required": ["blacklist"]}]
            }),
        )
    }
}

/// `core.ip.validate_cidr_or_ip`: the schema's IPv6 patterns are loose, so parse for real.
pub fn is_ip_or_cidr(text: &str) -> bool {
    let (ip, mask) = match text.split_once('/') {
        Some((ip, mask)) => match mask.trim().parse::<u8>() {
            Ok(mask) => (ip, mask),
            Err(_) => return false,
        },
        None => (text, 0),
    };
    if ip.parse::<Ipv4Addr>().is_ok() {
        return mask <= 32;
    }
    mask <= 128 && ip.parse::<Ipv6Addr>().is_ok()
}

fn check(conf: &Value) -> Result<(), String> {
    for list in ["whitelist", "blacklist"] {
        for item in conf
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let text = item.as_str().unwrap_or_default();
            if !is_ip_or_cidr(text) {
                return Err(format!("invalid ip address: {text}"));
            }
        }
    }
    Ok(())
}

fn default_message() -> String {
    "Your IP address is not allowed".to_string()
}

fn forbidden() -> u16 {
    403
}

/// The configuration.
#[derive(Debug, Deserialize)]
struct Config {
    whitelist: Option<Vec<String>>,
    blacklist: Option<Vec<String>>,
    #[serde(default = "default_message")]
    message: String,
    #[serde(default = "forbidden")]
    response_code: u16,
}

/// An ip-restriction instance: the lists compiled once.
#[derive(Debug)]
pub struct IpRestriction {
    whitelist: Option<IpMatcher>,
    blacklist: Option<IpMatcher>,
    message: String,
    status: StatusCode,
}

/// Builds ip-restriction from a checked configuration.
pub fn build(conf: &Value, _env: &BuildEnv<'_>) -> Result<Arc<dyn Plugin>, String> {
    let c: Config = typed(conf)?;
    let matcher = |list: Option<Vec<String>>| list.map(|l| IpMatcher::new(&l)).transpose();
    Ok(Arc::new(IpRestriction {
        whitelist: matcher(c.whitelist)?,
        blacklist: matcher(c.blacklist)?,
        message: c.message,
        status: StatusCode::from_u16(c.response_code).map_err(|e| e.to_string())?,
    }))
}

impl Plugin for IpRestriction {
    fn name(&self) -> &'static str {
        NAME
    }

    fn priority(&self) -> i32 {
        3000
    }

    fn access(&self, ctx: &mut Ctx) -> Flow {
        let ip = ctx
            .var("remote_addr")
            .and_then(|a| a.parse::<IpAddr>().ok());
        let listed = |m: &IpMatcher| ip.is_some_and(|ip| m.contains(ip));
        let mut block = self.blacklist.as_ref().is_some_and(listed);
        if let Some(allowed) = &self.whitelist {
            block = !listed(allowed);
        }
        if block {
            return Flow::Respond(Reply::message(self.status, &self.message));
        }
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{ctx_for, get, plugin};

    fn status(conf: Value, remote: &str) -> Option<(u16, String)> {
        let p = plugin(NAME, conf);
        let mut ctx = ctx_for(get("/"));
        ctx.remote = remote.parse().expect("addr");
        match p.access(&mut ctx) {
            Flow::Respond(r) => Some((
                r.status.as_u16(),
                String::from_utf8_lossy(&r.body).into_owned(),
            )),
            Flow::Continue => None,
            Flow::Wait(_) => unreachable!("this plugin never waits"),
        }
    }

    #[test]
    fn whitelist() {
        let conf = json!({"whitelist": ["10.0.0.0/8", "::1"]});
        assert_eq!(status(conf.clone(), "10.1.2.3:1"), None);
        assert_eq!(status(conf.clone(), "[::1]:1"), None);
        assert_eq!(
            status(conf, "192.168.0.1:1"),
            Some((
                403,
                "{\"message\":\"Your IP address is not allowed\"}\n".into()
            ))
        );
    }

    #[test]
    fn blacklist_with_message_and_code() {
        let conf = json!({"blacklist": ["127.0.0.1", "fe80::/10"], "message": "go away", "response_code": 404});
        assert_eq!(
            status(conf.clone(), "127.0.0.1:1"),
            Some((404, "{\"message\":\"go away\"}\n".into()))
        );
        assert_eq!(status(conf.clone(), "[fe80::1]:1").map(|s| s.0), Some(404));
        assert_eq!(status(conf, "127.0.0.2:1"), None);
    }

    #[test]
    fn remote_addr_variable_wins() {
        let p = plugin(NAME, json!({"whitelist": ["1.2.3.4"]}));
        let mut ctx = ctx_for(get("/"));
        ctx.set_var("remote_addr", "1.2.3.4");
        assert_eq!(p.access(&mut ctx), Flow::Continue);
    }
}
