//! Host capabilities. Each is one module implementing [`Handler`]; the
//! runtime links them all once, checks each manifest's grants once, and
//! makes each actor's state from them at spawn. Adding a capability is one
//! module and one line in [`HandlerSet::builtin`].
//!
//! A child an actor spawns is granted at most what its parent holds: each
//! handler says, in [`Handler::within`], whether a child's config is within
//! its parent's, and [`Grants::within`] asks every one of them.

pub mod config;
mod environment;
mod filesystem;
mod handler;
mod http_client;
mod http_framework;
mod http_record;
mod message_server;
pub mod messaging;
mod random;
mod recorded;
mod runtime;
mod store;
mod supervision;
mod supervisor;
mod supervisor_policy;
mod timing;

pub use config::ConfigError;
pub use filesystem::{CommandSandbox, command_sandbox};
pub use handler::{Exports, Granted, Handler, HandlerConfig, HostFunctions};
pub(crate) use http_framework::EPHEMERAL_PORTS;
pub use message_server::{
    CHANNEL_CLOSE, CHANNEL_MESSAGE, CHANNEL_OPEN, ChannelAccept, HANDLE_REQUEST, HANDLE_SEND,
};
pub use messaging::{ChannelEvent, ClientChannel, EXTERNAL_CHANNEL_CAPACITY, Sender};
pub use runtime::{MAX_LOG_BYTES, MAX_SHUTDOWN_DATA_BYTES};
pub use supervision::{CHILD_ERROR, CHILD_EXIT, children_terms};
pub use supervisor_policy::{
    DEFAULT_MAX_CHILDREN, MAX_MAX_CHILDREN, MAX_MAX_RESTARTS, Restart, Strategy, SupervisionPolicy,
};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use wasmtime::Engine;
use wasmtime::component::Linker;

use crate::actor::{
    ACTOR_INTERFACE, ActorStore, ChildEvent, ChildLink, Decision, Exit, Extensions, RuntimeServices,
};
use crate::error::SpawnError;
use crate::manifest::Manifest;
use crate::packages::{self, Package};
use crate::wasm::ExportKey;
use handler::{AnyHandler, CheckedConfig};

/// Interfaces that declare only types: components import them, and there is
/// nothing to provide but their name (canonical; linked under every package).
const TYPE_INTERFACES: &[&str] = &[
    "ntwk:theater/types",
    "ntwk:theater/http-types",
    "ntwk:theater/websocket-types",
];

/// The capabilities a runtime offers.
#[derive(Clone)]
pub struct HandlerSet {
    handlers: Vec<Arc<dyn AnyHandler>>,
}

impl HandlerSet {
    /// Every capability Theater ships.
    pub fn builtin() -> Self {
        Self {
            handlers: vec![
                Arc::new(runtime::RuntimeHandler),
                Arc::new(message_server::MessageServerHandler),
                Arc::new(supervisor::SupervisorHandler),
                Arc::new(store::StoreHandler::default()),
                Arc::new(timing::TimingHandler),
                Arc::new(random::RandomHandler),
                Arc::new(environment::EnvironmentHandler),
                Arc::new(filesystem::FilesystemHandler),
                Arc::new(http_client::HttpClientHandler::default()),
                Arc::new(http_framework::HttpFrameworkHandler),
            ],
        }
    }

    /// Adds an embedder's own capability, granted by `type = handler.name()`;
    /// it replaces a built-in one of the same name.
    pub fn with<H: Handler>(mut self, handler: H) -> Self {
        self.handlers.retain(|h| h.name() != H::NAME);
        self.handlers.push(Arc::new(handler));
        self
    }

    /// The runtime's hook after a supervised actor failed or asked to end:
    /// the decision of the first capability that supervises it, if any.
    pub(crate) fn child_event(
        &self,
        runtime: &dyn RuntimeServices,
        link: &ChildLink,
        event: &ChildEvent,
    ) -> Option<Decision> {
        self.handlers
            .iter()
            .find_map(|handler| handler.child_event(runtime, link, event))
    }

    /// The runtime's hook once an actor ended: every capability forgets it.
    pub(crate) fn actor_ended(&self, runtime: &dyn RuntimeServices, exit: &Exit) {
        for handler in &self.handlers {
            handler.actor_ended(runtime, exit);
        }
    }

    /// One linker with sandboxed WASI and every handler's host functions,
    /// under each package name of [`Package::ALL`].
    pub fn linker(&self, engine: &Engine) -> wasmtime::Result<Linker<ActorStore>> {
        let mut linker = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        for package in Package::ALL {
            for interface in TYPE_INTERFACES {
                linker.instance(&package.name_of(interface))?;
            }
            for handler in &self.handlers {
                handler.add_to_linker(&mut linker, package)?;
            }
        }
        Ok(linker)
    }

    /// The handlers a manifest grants, each config checked once: the
    /// result serves every spawn from this manifest.
    pub fn grants(&self, manifest: &Manifest) -> Result<Grants, SpawnError> {
        let empty = toml::Table::new();
        // (handler, its entry's place in the manifest, its config)
        let mut listed: Vec<(&Arc<dyn AnyHandler>, Option<usize>, &toml::Table)> = self
            .handlers
            .iter()
            .filter(|h| h.always_granted())
            .map(|h| (h, None, &empty))
            .collect();
        for (index, entry) in manifest.handlers.iter().enumerate() {
            let handler = self
                .handlers
                .iter()
                .find(|h| h.name() == entry.kind)
                .ok_or_else(|| SpawnError::UnknownHandler {
                    manifest: manifest.source.clone(),
                    line: entry.line,
                    kind: entry.kind.clone(),
                    known: self
                        .handlers
                        .iter()
                        .map(|h| h.name())
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
            let grant = (handler, Some(index), &entry.config);
            match listed.iter_mut().find(|g| g.0.name() == handler.name()) {
                // Listing an always-granted handler is fine; it makes its exports required.
                Some(existing) => *existing = grant,
                None => listed.push(grant),
            }
        }
        let granted = listed
            .into_iter()
            .map(|(handler, index, config)| {
                let line = index.map_or(0, |i| manifest.handlers[i].line);
                let checked =
                    handler
                        .clone()
                        .check(config)
                        .map_err(|e| SpawnError::HandlerConfig {
                            manifest: manifest.source.clone(),
                            line: line_of(e.key.as_deref(), index, line, &manifest.lines),
                            kind: handler.name().to_owned(),
                            reason: e.message,
                        })?;
                Ok(Grant {
                    handler: handler.clone(),
                    checked,
                    line,
                    index,
                })
            })
            .collect::<Result<_, SpawnError>>()?;
        Ok(Grants {
            all: self.clone(),
            granted,
            manifest: manifest.source.clone(),
            dir: manifest.base_dir().to_owned(),
            lines: manifest.lines.clone(),
            inline_handlers: manifest.line_of("handler").is_some(),
        })
    }
}

/// One handler granted to an actor.
struct Grant {
    handler: Arc<dyn AnyHandler>,
    checked: Arc<dyn CheckedConfig>,
    /// Line of its `[[handlers]]` entry, 0 if not listed.
    line: usize,
    /// Its place among the manifest's `[[handlers]]`, if listed.
    index: Option<usize>,
}

impl Grant {
    /// Whether the manifest lists it.
    fn listed(&self) -> bool {
        self.index.is_some()
    }
}

/// The line an error about `key` of the config of the manifest's handler
/// entry `index` points at: the key's own, else `entry_line`.
fn line_of(
    key: Option<&str>,
    index: Option<usize>,
    entry_line: usize,
    lines: &BTreeMap<String, usize>,
) -> usize {
    key.zip(index)
        .and_then(|(key, index)| lines.get(&format!("handlers.{index}.config.{key}")))
        .copied()
        .unwrap_or(entry_line)
}

/// The handlers granted to one actor.
pub struct Grants {
    all: HandlerSet,
    granted: Vec<Grant>,
    manifest: PathBuf,
    /// The manifest's directory.
    dir: PathBuf,
    /// Lines of the manifest's keys.
    lines: BTreeMap<String, usize>,
    /// The manifest lists its handlers as `[[handler]]` (the 2025 form).
    inline_handlers: bool,
}

impl Grants {
    /// Fails if the component imports an interface its manifest does not
    /// grant, naming the handler to add. Interfaces are granted under every
    /// package name.
    pub fn check_imports(&self, imports: &[String]) -> Result<(), SpawnError> {
        for import in imports {
            let interface = import.split('@').next().unwrap_or(import);
            let canonical = packages::canonical(interface);
            let canonical = canonical.as_ref();
            if interface.starts_with("wasi:") || TYPE_INTERFACES.contains(&canonical) {
                continue;
            }
            if self
                .granted
                .iter()
                .any(|g| g.handler.imports().contains(&canonical))
            {
                continue;
            }
            return Err(
                match self
                    .all
                    .handlers
                    .iter()
                    .find(|h| h.imports().contains(&canonical))
                {
                    Some(handler) => SpawnError::NotGranted {
                        manifest: self.manifest.clone(),
                        interface: interface.to_owned(),
                        kind: handler.name(),
                        entry: match self.inline_handlers {
                            true => format!("[[handler]]\ntype = \"{}\"", handler.name()),
                            false => {
                                format!(
                                    "[[handlers]]\ntype = \"{}\"\nconfig = {{}}",
                                    handler.name()
                                )
                            }
                        },
                    },
                    None => SpawnError::UnknownInterface {
                        interface: interface.to_owned(),
                    },
                },
            );
        }
        Ok(())
    }

    /// Every export the actor must or may have: `actor.init` and each
    /// granted handler's.
    pub fn exports(&self) -> Exports {
        let mut exports = Exports::default();
        exports.register_function_no_result::<(String,)>(ACTOR_INTERFACE, "init");
        for grant in &self.granted {
            grant.handler.exports(&mut exports, grant.listed());
        }
        exports
    }

    /// What [`exports`](Self::exports) is built from.
    pub fn export_key(&self) -> ExportKey {
        self.granted
            .iter()
            .map(|grant| (grant.handler.name(), grant.listed()))
            .collect()
    }

    /// Each granted handler's per-actor state, from its checked config.
    pub fn configure(&self) -> Result<Extensions, SpawnError> {
        let mut extensions = Extensions::default();
        for grant in &self.granted {
            grant
                .checked
                .configure(&mut extensions)
                .map_err(|e| SpawnError::HandlerConfig {
                    manifest: self.manifest.clone(),
                    line: line_of(e.key.as_deref(), grant.index, grant.line, &self.lines),
                    kind: grant.handler.name().to_owned(),
                    reason: e.message,
                })?;
        }
        Ok(extensions)
    }

    /// Fails unless every capability granted here is held by `parent` too,
    /// each within the parent's config (see [`Handler::within`]). For a
    /// spawn an actor asks for; blocking (a handler may resolve paths).
    pub fn within(&self, parent: &Grants) -> Result<(), SpawnError> {
        for grant in &self.granted {
            let name = grant.handler.name();
            let Some(held) = parent.granted.iter().find(|g| g.handler.name() == name) else {
                return Err(SpawnError::NotHeld {
                    manifest: self.manifest.clone(),
                    line: grant.line,
                    kind: name,
                });
            };
            grant
                .checked
                .within(&self.dir, held.checked.as_ref(), &parent.dir)
                .map_err(|e| SpawnError::BeyondParent {
                    manifest: self.manifest.clone(),
                    line: line_of(e.key.as_deref(), grant.index, grant.line, &self.lines),
                    what: format!("capability `{name}`"),
                    reason: e.message,
                })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Every handler, in both manifest forms, refuses a config key it does
    /// not know, naming the key and its line, before any component is read.
    #[test]
    fn every_handler_refuses_an_unknown_config_key() {
        let handlers = HandlerSet::builtin();
        let forms = [
            (
                "[[handlers]]\ntype = \"TYPE\"\nconfig = { bogus_key = 1 }\n",
                6,
            ),
            (
                "[[handlers]]\ntype = \"TYPE\"\n[handlers.config]\nbogus_key = 1\n",
                7,
            ),
            ("[[handler]]\ntype = \"TYPE\"\nbogus_key = 1\n", 6),
        ];
        for handler in &handlers.handlers {
            let name = handler.name();
            for (form, line) in forms {
                let entry = form.replace("TYPE", name);
                let text = format!("name = \"x\"\ncomponent_path = \"x.wasm\"\n\n{entry}");
                let manifest = Manifest::parse(&text, Path::new("manifest.toml"), Path::new("."))
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                let Err(err) = handlers.grants(&manifest) else {
                    panic!("`{name}` accepted an unknown key in\n{text}");
                };
                let shown = err.to_string();
                assert!(
                    matches!(&err, SpawnError::HandlerConfig { line: l, kind, .. } if *l == line && kind == name),
                    "{name}: {shown}\n{text}"
                );
                assert!(
                    shown.contains("unknown setting `bogus_key`"),
                    "{name}: {shown}"
                );
            }
        }
    }
}
