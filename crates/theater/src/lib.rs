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

pub mod actor;
mod admission;
pub mod chain;
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
