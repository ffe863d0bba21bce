//! portico-control
