//! portico-plugins
