//! Test helpers: real contexts from `http::Request`s, plugins built through the compiler (schema
//! defaults and checks included), consumer indexes, and a one-poll executor.

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use portico_model::Registry;
use serde_json::Value;

use crate::{Chain, Compiler, Conf, Consumer, ConsumerIndex, Ctx, Plugin, PluginState};

/// The client address of test requests.
pub const CLIENT: &str = "127.0.0.1:40000";

/// A GET request builder.
pub fn get(uri: &str) -> http::request::Builder {
    http::Request::builder().method("GET").uri(uri)
}

/// The context of a request.
pub fn ctx_for(req: http::request::Builder) -> Ctx {
    let req = req.body(()).expect("valid test request");
    Ctx::from_request(&req, CLIENT.parse().expect("addr"))
}

/// What a compiler borrows.
pub struct Fixture {
    pub registry: Registry,
    pub state: PluginState,
    pub metadata: HashMap<String, Value>,
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture {
            registry: crate::registry(),
            state: PluginState::default(),
            metadata: HashMap::new(),
        }
    }

    pub fn compiler(&self) -> Compiler<'_> {
        Compiler {
            registry: &self.registry,
            state: &self.state,
            metadata: &self.metadata,
            upstreams: None,
        }
    }

    /// A chain of the `plugins` map `plugins`, owned by `owner`.
    pub fn chain(&self, plugins: Value, owner: &str) -> Arc<Chain> {
        let map = plugins.as_object().cloned().unwrap_or_default();
        Arc::new(
            self.compiler()
                .plugins(&map, owner)
                .expect("chain compiles"),
        )
    }
}

/// One plugin built from `conf` as a template would hold it.
pub fn plugin(name: &str, conf: Value) -> Arc<dyn Plugin> {
    let f = Fixture::new();
    let entry = f
        .compiler()
        .entry(Conf {
            name,
            conf: &conf,
            owner: "ws/default/plugin_configs/t",
        })
        .expect("plugin builds")
        .expect("plugin enabled");
    entry.plugin().clone()
}

/// A consumer without plugins.
pub fn consumer(username: &str) -> Consumer {
    Consumer {
        username: username.to_string(),
        key: format!("ws/default/consumers/{username}"),
        revision: 1,
        credential_id: None,
        custom_id: None,
        group: None,
        plugins: Arc::new(Chain::empty()),
        header_values: Default::default(),
    }
}

/// An index of consumers (`{username, labels?, plugins?}`) and credentials
/// (`(consumer, id, plugins)`).
pub fn index(consumers: &[Value], credentials: &[(&str, &str, Value)]) -> Arc<ConsumerIndex> {
    let registry = crate::registry();
    let mut index = ConsumerIndex::new();
    let mut by_name = HashMap::new();
    for c in consumers {
        let username = c["username"].as_str().unwrap_or_default();
        let mut consumer = consumer(username);
        consumer.custom_id = c["labels"]["custom_id"].as_str().map(str::to_string);
        let consumer = Arc::new(consumer);
        let plugins = c["plugins"].as_object().cloned().unwrap_or_default();
        assert!(index
            .add_consumer(consumer.clone(), &plugins, &registry)
            .is_empty());
        by_name.insert(username.to_string(), consumer);
    }
    for (owner, id, plugins) in credentials {
        let plugins = plugins.as_object().cloned().unwrap_or_default();
        let consumer = by_name.get(*owner).expect("credential's consumer");
        assert!(index
            .add_credential(consumer, id, &plugins, &registry)
            .is_empty());
    }
    Arc::new(index)
}

/// Runs a future that never waits (the runtime's async phases today).
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}
