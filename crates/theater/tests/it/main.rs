//! The library's integration tests, in one binary so the suite links
//! wasmtime once (`environment.rs` is apart: it sets process variables).

mod common;

mod cache;
mod calls;
mod compat;
mod compat_2025;
mod docs;
mod durability;
mod embedder_handler;
mod filesystem;
mod http;
mod http_client;
mod messaging;
mod metrics;
mod one_at_a_time;
mod persistence;
mod random_env;
mod replay;
mod scale;
mod spawn_errors;
mod store;
mod supervision;
mod timing;
