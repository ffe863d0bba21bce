//! real-ip: takes the client address from a variable or header (APISIX priority 23000, rewrite
//! phase; `apisix/plugins/real-ip.lua`).
//!
//! When the peer (`$remote_addr`) is in `trusted_addresses` (or none are configured), the
//! address is read from `source`: a variable such as `http_x_real_ip` or `arg_realip`, or, for
//! `http_x_forwarded_for`, the last `X-Forwarded-For` header's last entry — with `recursive` and
//! `trusted_addresses`, the rightmost entry that is not trusted (the first one if all are). It
//! may be `ip`, `ip:port`, `[ipv6]` or `[ipv6]:port`; anything else, or a port outside 1–65535,
//! is ignored. The address then replaces [`Ctx::remote`] and the `remote_addr`/`remote_port`
//! variables (`remote_port` is empty without a port), so every later plugin and the
//! `X-Real-IP`/`X-Forwarded-For` headers sent upstream see it; `realip_remote_addr` and
//! `realip_remote_port` keep the peer's.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use portico_expr::{IpMatcher, Vars};
use portico_model::schemas::defs::ip_def;
use portico_model::PluginSpec;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::ip_restriction::is_ip_or_cidr;
use crate::{typed, BuildEnv, Ctx, Flow, Plugin};

/// Plugin name.
pub const NAME: &str = "real-ip";

/// The registry row of real-ip.
pub fn spec() -> PluginSpec {
    PluginSpec {
        check: Some(check),
        ..PluginSpec::new(NAME, 23000, schema())
    }
}

/// The configuration schema (APISIX `real-ip.lua`).
pub fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "trusted_addresses": {"type": "array", "items": {"anyOf": ip_def()}, "minItems": 1},
            "source": {"type": "string", "minLength": 1},
            "recursive": {"type": "boolean", "default": false}
        },
        "required": ["source"]
    })
}

fn check(conf: &Value) -> Result<(), String> {
    for item in conf
        .get("trusted_addresses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let text = item.as_str().unwrap_or_default();
        if !is_ip_or_cidr(text) {
            return Err(format!("invalid ip address: {text}"));
        }
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
struct Config {
    trusted_addresses: Option<Vec<String>>,
    source: String,
    #[serde(default)]
    recursive: bool,
}

/// A real-ip instance.
#[derive(Debug)]
pub struct RealIp {
    trusted: Option<IpMatcher>,
    source: String,
    recursive: bool,
}

/// Builds real-ip from a checked configuration.
pub fn build(conf: &Value, _env: &BuildEnv<'_>) -> Result<Arc<dyn Plugin>, String> {
    let c: Config = typed(conf)?;
    Ok(Arc::new(RealIp {
        trusted: c
            .trusted_addresses
            .map(|l| IpMatcher::new(&l))
            .transpose()?,
        source: c.source,
        recursive: c.recursive,
    }))
}

/// `core.utils.parse_addr`: the host part and the port, if any (`tonumber` of what follows the
/// last colon; `None` when that is not a number). Bracketed IPv6 keeps its brackets.
fn parse_addr(addr: &str) -> (&str, Option<f64>) {
    if addr.starts_with('[') {
        if addr.ends_with(']') {
            return (addr, None);
        }
        return match addr_rfind_colon(addr) {
            Some(pos) if pos > 0 && addr.as_bytes()[pos - 1] == b']' => split(addr),
            _ => (addr, None),
        };
    }
    // A dot first: IPv4 or a host, maybe with a port; a second colon first: bare IPv6.
    let mut colons = 0;
    for b in addr.bytes() {
        match b {
            b'.' => return split(addr),
            b':' => {
                colons += 1;
                if colons == 2 {
                    return (addr, None);
                }
            }
            _ => {}
        }
    }
    split(addr)
}

/// Host and port around the last colon (the whole text as host when there is none).
fn split(addr: &str) -> (&str, Option<f64>) {
    match addr_rfind_colon(addr) {
        Some(pos) => (&addr[..pos], lua_number(&addr[pos + 1..])),
        None => (addr, None),
    }
}

/// `rfind_char(addr, ":", #addr - 1)`: the last colon, not counting the last character.
fn addr_rfind_colon(addr: &str) -> Option<usize> {
    let end = addr.len().saturating_sub(1);
    addr.as_bytes()[..end].iter().rposition(|b| *b == b':')
}

/// Lua's `tonumber` for decimal text (surrounding spaces allowed).
fn lua_number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

/// `parse_ipv4(ip) or parse_ipv6(ip)` (lua-resty-ipmatcher), brackets allowed around IPv6.
fn parse_ip(text: &str) -> Option<IpAddr> {
    if let Ok(v4) = text.parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(v4));
    }
    let inner = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

impl RealIp {
    fn trusted(&self, addr: &str) -> bool {
        let Some(m) = &self.trusted else {
            return false;
        };
        addr.parse::<IpAddr>().is_ok_and(|ip| m.contains(ip))
    }

    /// APISIX `get_addr`.
    fn address(&self, ctx: &Ctx) -> Option<String> {
        if self.source != "http_x_forwarded_for" {
            return ctx.var(&self.source).map(|v| v.into_owned());
        }
        let last = ctx
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .next_back()?
            .to_str()
            .ok()?;
        let Some(comma) = last.rfind(',') else {
            return Some(last.to_string());
        };
        if self.recursive && self.trusted.is_some() {
            let parts: Vec<&str> = last
                .split(',')
                .enumerate()
                .map(|(i, p)| if i == 0 { p } else { p.trim_start() })
                .collect();
            let untrusted = parts[1..].iter().rev().find(|p| !self.trusted(p));
            return Some(untrusted.unwrap_or(&parts[0]).to_string());
        }
        Some(last[comma + 1..].trim_start_matches(' ').to_string())
    }
}

impl Plugin for RealIp {
    fn name(&self) -> &'static str {
        NAME
    }

    fn priority(&self) -> i32 {
        23000
    }

    fn rewrite(&self, ctx: &mut Ctx) -> Flow {
        if self.trusted.is_some() {
            let peer = ctx.var("remote_addr").map(|v| v.into_owned());
            if !peer.is_some_and(|p| self.trusted(&p)) {
                return Flow::Continue;
            }
        }
        let Some(addr) = self.address(ctx) else {
            tracing::warn!("real-ip: missing real address");
            return Flow::Continue;
        };
        let (host, port) = parse_addr(&addr);
        let Some(ip) = parse_ip(host) else {
            tracing::warn!("real-ip: bad address: {addr}");
            return Flow::Continue;
        };
        if port.is_some_and(|p| !(1.0..=65535.0).contains(&p)) {
            tracing::warn!("real-ip: bad port in {addr}");
            return Flow::Continue;
        }
        let port = port.map(|p| p as u16);
        let (peer_addr, peer_port) = (
            ctx.var("remote_addr")
                .map(|v| v.into_owned())
                .unwrap_or_default(),
            ctx.var("remote_port")
                .map(|v| v.into_owned())
                .unwrap_or_default(),
        );
        ctx.remote = SocketAddr::new(ip, port.unwrap_or(0));
        ctx.set_var("realip_remote_addr", peer_addr);
        ctx.set_var("realip_remote_port", peer_port);
        ctx.set_var("remote_addr", ip.to_string());
        ctx.set_var(
            "remote_port",
            port.map(|p| p.to_string()).unwrap_or_default(),
        );
        Flow::Continue
    }
}

#[cfg(test)]
mod tests;
