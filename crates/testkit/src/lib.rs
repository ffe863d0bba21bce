//! Test harness: free loopback ports, real etcd and Redis processes, the real `portico` binary.
//!
//! Everything here starts real programs on `127.0.0.1` in a temporary folder and stops them when
//! the handle is dropped.

pub mod etcd;
pub mod http;
pub mod portico;
pub mod ports;
pub mod redis;
pub mod tls;
pub mod upstream;

pub use etcd::{EtcdCluster, EtcdServer};
pub use ports::{free_port, wait_for_port};
pub use redis::{RedisCluster, RedisSentinel, RedisServer};
pub use tls::TestCerts;
