//! The behaviour both back ends share. Each case gets a [`Backend`] with a prefix of its own; the
//! etcd cases may share a server with other cases, so they never assume that no other write
//! happened between two of theirs (revisions grow, but not necessarily by one).

mod kv;
mod watch_lease;

use portico_store::PutOptions;

pub use kv::*;
pub use watch_lease::*;

pub(crate) fn cas(rev: i64) -> PutOptions {
    PutOptions {
        expect_mod_revision: Some(rev),
        ..PutOptions::default()
    }
}

pub(crate) fn leased(lease: i64) -> PutOptions {
    PutOptions {
        lease: Some(lease),
        ..PutOptions::default()
    }
}
