//! The per-route conditions checked after a path (and host) candidate is found, in
//! lua-resty-radixtree's order: method, remote address, `vars`.

use portico_expr::{Expr, IpMatcher};

use crate::Request;

/// The methods lua-resty-radixtree knows, in the order of its bitmask.
const METHOD_NAMES: [&str; 10] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE", "PURGE",
];

/// A set of HTTP methods as a bitmask; the empty set allows every method.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Methods(u16);

impl Methods {
    /// Parses a route's `methods`; the error is the first unknown name (names are upper case).
    pub(crate) fn parse<S: AsRef<str>>(names: &[S]) -> Result<Methods, String> {
        names.iter().try_fold(Methods(0), |set, name| {
            let name = name.as_ref();
            bit(name)
                .map(|b| Methods(set.0 | b))
                .ok_or_else(|| name.to_string())
        })
    }

    /// Whether a request with `method` passes. An unknown request method passes only routes
    /// without `methods`; `HEAD` is not implied by `GET`.
    pub(crate) fn allows(self, method: &str) -> bool {
        self.0 == 0 || bit(method).is_some_and(|b| self.0 & b != 0)
    }
}

fn bit(name: &str) -> Option<u16> {
    METHOD_NAMES
        .iter()
        .position(|known| *known == name)
        .map(|i| 1 << i)
}

/// A route as stored in the router: the caller's payload and its non-path conditions. The
/// entry a lookup reads stays small (24 bytes with a pointer as payload; the conditions inline
/// made it 136): the rarer conditions are boxed, so a big table spans fewer cache lines and pages.
#[derive(Debug)]
pub(crate) struct Route<T> {
    pub(crate) id: T,
    pub(crate) methods: Methods,
    /// `None` when the route has neither `remote_addrs` nor `vars`.
    pub(crate) rare: Option<Box<RareConditions>>,
}

/// The conditions few routes have.
#[derive(Debug)]
pub(crate) struct RareConditions {
    pub(crate) remote_addrs: Option<IpMatcher>,
    pub(crate) vars: Option<Expr>,
}

impl<T> Route<T> {
    /// A route with `id`; the rare conditions are boxed only when there are some.
    pub(crate) fn new(
        id: T,
        methods: Methods,
        remote_addrs: Option<IpMatcher>,
        vars: Option<Expr>,
    ) -> Route<T> {
        let rare = (remote_addrs.is_some() || vars.is_some())
            .then(|| Box::new(RareConditions { remote_addrs, vars }));
        Route { id, methods, rare }
    }

    /// Whether the request passes every condition but the path and host ones.
    pub(crate) fn accepts(&self, req: &Request<'_>) -> bool {
        self.methods.allows(req.method)
            && self.rare.as_deref().is_none_or(|rare| {
                rare.remote_addrs
                    .as_ref()
                    .is_none_or(|m| m.contains(req.remote_addr))
                    && rare.vars.as_ref().is_none_or(|e| e.eval(req.vars))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_method_list_allows_everything() {
        let any = Methods::default();
        assert!(any.allows("GET"));
        assert!(any.allows("PROPFIND"));
    }

    #[test]
    fn methods_are_exact_and_case_sensitive() {
        let get_post = Methods::parse(&["GET", "POST"]).expect("known methods");
        assert!(get_post.allows("GET"));
        assert!(get_post.allows("POST"));
        assert!(!get_post.allows("HEAD"));
        assert!(!get_post.allows("get"));
        assert!(!get_post.allows("PROPFIND"));
        let all = Methods::parse(&METHOD_NAMES).expect("known methods");
        assert!(METHOD_NAMES.iter().all(|m| all.allows(m)));
    }

    #[test]
    fn rare_conditions_are_boxed_only_when_present() {
        // The entry a lookup reads: payload, methods and one pointer.
        assert!(std::mem::size_of::<Route<usize>>() <= 24);
        let plain = Route::new(1usize, Methods::default(), None, None);
        assert!(plain.rare.is_none());
        let rule = serde_json::json!([["arg_a", "==", "1"]]);
        let vars = Expr::compile(&rule).expect("rule");
        let with_vars = Route::new(2usize, Methods::default(), None, Some(vars));
        assert!(with_vars
            .rare
            .is_some_and(|r| r.vars.is_some() && r.remote_addrs.is_none()));
        let ips = IpMatcher::new(&["10.0.0.0/8"]).expect("cidr");
        let with_ips = Route::new(3usize, Methods::default(), Some(ips), None);
        assert!(with_ips
            .rare
            .is_some_and(|r| r.remote_addrs.is_some() && r.vars.is_none()));
    }

    #[test]
    fn unknown_route_method_is_an_error() {
        assert_eq!(Methods::parse(&["GET", "FETCH"]), Err("FETCH".to_string()));
    }
}
