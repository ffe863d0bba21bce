//! Real etcd servers for tests (written with the store back end).
