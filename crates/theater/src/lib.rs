//! Theater runs **actors that are WebAssembly components**.
//!
//! - An *actor* is a component plus a TOML [`manifest`]. It runs isolated,
//!   reaches the world only through the host capabilities its manifest
//!   grants, handles one call at a time, and keeps its state as bytes.
//! - Every state transition is recorded in the actor's SHA-256 hash
//!   [`chain`], which anyone can [`verify`](chain::verify) later.
//! - Each capability is a [`Handler`](host::Handler); the runtime core
//!   knows none by name.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use theater::{RuntimeConfig, TheaterRuntime, host::HANDLE_SEND};
//!
//! let runtime = TheaterRuntime::new(RuntimeConfig::embedded()?)?;
//! let counter = runtime.spawn_file("actors/counter/manifest.toml").await?;
//! counter
//!     .call_function::<(Vec<u8>,), ()>(HANDLE_SEND, (br#"{"add": 2}"#.to_vec(),))
//!     .await?;
//! theater::chain::verify(&runtime.chain(counter.id())?)?;
//! # Ok(()) }
//! ```
//!
//! # Layers
//!
//! Every import points down this list (bottom first): a module imports from
//! the layers below its own and from itself, never from a module beside it
//! in its layer. `cargo xtask layers` (run first by `cargo xtask test`)
//! checks it.
//!
//! 0. [`id`], [`files`], [`packages`], `admission`, `tasks`: actor ids,
//!    bounded file reads, the two package names, who is let into the
//!    servers, background tasks that end with their owner.
//! 1. [`web`], [`cluster`]: the plumbing of the operator's HTTP endpoints;
//!    a node's membership of a NATS JetStream cluster.
//! 2. [`manifest`]: what an actor is made of and granted.
//! 3. [`chain`]: pure data: events, hashing, verification.
//! 4. [`storage`]: where chains, actor records and states are kept.
//! 5. [`wasm`]: the engine and compiled components, generic over the data
//!    a store holds.
//! 6. [`error`]: the errors callers of an actor see.
//! 7. [`telemetry`], [`metrics`]: spans, the metrics registry and its
//!    endpoint.
//! 8. [`actor`]: one actor, its queue, its task and its host state; the
//!    [`HostView`](actor::HostView) capabilities reach it through and the
//!    [`RuntimeServices`](actor::RuntimeServices) they reach the runtime
//!    through, which the runtime implements.
//! 9. [`host`]: the capabilities, messaging and supervision among them.
//! 10. [`replay`]: re-running a chain's calls.
//! 11. [`runtime`]: the registry of running actors and the tree of who
//!     supervises whom; spawns, stops, routes, and calls the capabilities'
//!     hooks when an actor fails or ends.
//! 12. [`validate`]: checking a manifest without running it.
//! 13. [`server`], [`dashboard`]: the management protocol and the web page.

pub mod actor;
mod admission;
pub mod chain;
pub mod cluster;
pub mod dashboard;
pub mod error;
pub mod files;
pub mod host;
pub mod id;
pub mod manifest;
pub mod metrics;
pub mod packages;
pub mod replay;
pub mod runtime;
pub mod server;
pub mod storage;
mod tasks;
pub mod telemetry;
pub mod validate;
pub mod wasm;
pub mod web;

pub use actor::ActorHandle;
pub use error::{ActorError, SpawnError};
pub use id::ActorId;
pub use manifest::Manifest;
pub use packages::Package;
pub use runtime::{RuntimeConfig, TheaterRuntime};
