//! The store conformance suite: every case in `conformance/cases/` runs against both back ends,
//! the embedded store (in a temporary folder) and a real etcd (started by the testkit, shared by
//! the cases, each with its own key prefix). Back-end specific behaviour (crash safety of the
//! file, auth, outages, clusters) is in `embedded_only.rs` and `etcd_only.rs`.
//!
//! Run: `cargo test -p portico-store --test conformance` (needs `etcd` on PATH).

#[path = "conformance/cases/mod.rs"]
mod cases;
#[path = "conformance/embedded_only.rs"]
mod embedded_only;
#[path = "conformance/etcd_only.rs"]
mod etcd_only;
#[path = "conformance/harness.rs"]
mod harness;

/// Generates `embedded::<case>` and `etcd::<case>` tests for every case; the etcd variant of a
/// case marked `dedicated` gets an etcd of its own (it compacts, which affects every key).
macro_rules! conformance {
    ($($case:ident $(($dedicated:ident))?),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test]
                async fn $case() {
                    let backend = crate::harness::embedded(stringify!($case));
                    crate::cases::$case(&backend).await;
                }
            )*
        }
        mod etcd {
            $(
                #[tokio::test]
                async fn $case() {
                    let backend = conformance!(@etcd $case $($dedicated)?);
                    crate::cases::$case(&backend).await;
                }
            )*
        }
    };
    (@etcd $case:ident dedicated) => {
        crate::harness::etcd_dedicated(stringify!($case)).await
    };
    (@etcd $case:ident) => {
        crate::harness::etcd_shared(stringify!($case)).await
    };
}

conformance! {
    put_get_delete_round_trip,
    range_is_sorted_and_limited_to_the_prefix,
    range_over_ten_thousand_keys,
    put_compare_and_swap,
    delete_compare_and_swap,
    delete_prefix_removes_only_the_prefix,
    watch_delivers_past_and_live_changes_in_order,
    watch_from_now_sees_only_new_changes,
    watch_from_a_compacted_revision_resyncs(dedicated),
    lease_expiry_deletes_keys,
    lease_keep_alive_extends,
    lease_revoke_deletes_keys_at_once,
    revision_is_monotonic,
}
