//! Portico's control plane: the APISIX-compatible Admin API and the HTTP listener that serves it.

pub mod admin;
pub mod manage;
pub mod server;

pub use admin::{AdminApi, AdminKey, HostPolicy, Role, Scope};
pub use manage::ManageApi;
