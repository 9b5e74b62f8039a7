//! Checking an actor without running it: the checks a spawn makes (the
//! manifest's grants and their config, the component's imports and the
//! exports the granted handlers expect, with their types), made without a
//! home, an event log or a content store, and without running `init`.
//!
//! The component is compiled in memory and instantiated with every import
//! linked to a function that traps, so that nothing it could do when
//! instantiated reaches the host; its exports are then bound as a spawn
//! binds them.

use std::sync::Arc;

use tokio::sync::broadcast;
use wasmtime::component::{Component, InstancePre, Linker};

use crate::actor::{ActorStore, ActorTemplate, ChainRecorder, Extensions, instantiate_with};
use crate::host::{Grants, HandlerSet};
use crate::id::ActorId;
use crate::manifest::Manifest;
use crate::runtime::WeakRuntime;
use crate::storage::MemoryEventLog;
use crate::wasm::{self, ComponentCache};

/// What [`validate`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validation {
    /// Every interface the component imports, and whether it is granted.
    pub imports: Vec<ImportCheck>,
    /// Every export the granted handlers call, and whether it is there.
    pub exports: Vec<ExportCheck>,
    /// Everything that would stop the actor from starting; empty if
    /// nothing would (short of its `init` failing).
    pub errors: Vec<String>,
}

impl Validation {
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }
}

/// One imported interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportCheck {
    /// E.g. `ntwk:theater/runtime`.
    pub name: String,
    /// Why the manifest does not grant it, if it does not.
    pub problem: Option<String>,
}

/// One export a granted handler expects.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExportCheck {
    /// `interface.function`, as the component exports it when it does
    /// (under either package name), else by its `ntwk:theater` name.
    pub function: String,
    /// The Rust signature the handler calls it with.
    pub signature: String,
    pub required: bool,
    pub found: bool,
}

/// Checks `manifest` and its component against `handlers`, touching
/// nothing: no files but the component are read, none are written, no port
/// is bound and no actor code beyond the component's own instantiation runs.
pub async fn validate(manifest: &Manifest, handlers: &HandlerSet) -> Validation {
    let mut found = Validation::default();
    let grants = match handlers.grants(manifest) {
        Ok(grants) => Some(grants),
        Err(e) => {
            found.errors.push(e.to_string());
            None
        }
    };
    let extensions = match grants.as_ref().map(Grants::configure).transpose() {
        Ok(extensions) => extensions,
        Err(e) => {
            found.errors.push(e.to_string());
            None
        }
    };
    let engine = match wasm::new_engine() {
        Ok(engine) => engine,
        Err(e) => {
            found.errors.push(format!("cannot set up wasmtime: {e:#}"));
            return found;
        }
    };
    let linker = match handlers.linker(&engine) {
        Ok(linker) => linker,
        Err(e) => {
            found.errors.push(format!("linking host functions: {e:#}"));
            return found;
        }
    };
    // In memory: validation keeps no compiled code.
    let cache = ComponentCache::new(engine.clone(), linker, None);
    let compiled = match cache.load(&manifest.component_path).await {
        Ok(compiled) => compiled,
        Err(e) => {
            found.errors.push(e.to_string());
            return found;
        }
    };
    let Some(grants) = grants else {
        return found;
    };
    for import in &compiled.imports {
        let problem = grants
            .check_imports(std::slice::from_ref(import))
            .err()
            .map(|e| e.to_string());
        found.errors.extend(problem.clone());
        found.imports.push(ImportCheck {
            name: import.clone(),
            problem,
        });
    }
    if found.errors.is_empty()
        && let Err(e) = compiled.instance_pre()
    {
        found.errors.push(e.to_string());
    }

    let template = ActorTemplate {
        name: manifest.name.clone(),
        exports: compiled.export_table(grants.export_key(), || grants.exports()),
        compiled: compiled.clone(),
        limits: manifest.limits,
    };
    for (spec, export) in template.exports.entries() {
        found.exports.push(ExportCheck {
            function: export.map_or_else(|| spec.full_name(), |export| export.name.to_string()),
            signature: spec.signature(),
            required: spec.required,
            found: export.is_some(),
        });
    }
    // Binding checks each export's type, and that every required one is there.
    let inert = Linker::<ActorStore>::new(&engine);
    let bound = match inert_instance_pre(inert, &compiled.component) {
        Ok(pre) => {
            let store = inert_store(extensions.unwrap_or_default(), manifest);
            instantiate_with(&template, &pre, store).await.err()
        }
        Err(e) => Some(crate::SpawnError::Instantiate(format!("{e:#}"))),
    };
    found.errors.extend(bound.map(|e| e.to_string()));
    found
}

/// `component` with every import a trap.
fn inert_instance_pre(
    mut linker: Linker<ActorStore>,
    component: &Component,
) -> wasmtime::Result<InstancePre<ActorStore>> {
    linker.define_unknown_imports_as_traps(component)?;
    linker.instantiate_pre(component)
}

/// Host state that reaches nothing: a chain in memory, no runtime.
fn inert_store(extensions: Extensions, manifest: &Manifest) -> ActorStore {
    let recorder = ChainRecorder::new(
        ActorId::new(),
        Arc::new(MemoryEventLog::default()),
        broadcast::channel(1).0,
    );
    ActorStore::new(
        recorder,
        extensions,
        WeakRuntime::detached(),
        manifest.limits.memory_mb,
    )
}
