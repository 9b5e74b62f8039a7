//! Attacks on the sandbox, one module per area: what an untrusted actor, a
//! management client or a network peer can try, and the proof that each is
//! contained, that neighbours keep serving, and that chains still verify.

mod cache;
#[path = "../it/common/mod.rs"]
mod common;

mod accepted;
mod escalation;
mod filesystem;
mod host_files;
mod http;
mod management;
mod manifests;
mod neighbours;
mod observe;
mod oversize;
mod spawn_loops;
