//! portico-model
