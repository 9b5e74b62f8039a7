//! Host capabilities. Each is one module implementing [`Handler`]; the
//! runtime links them all once and grants them per actor from its manifest.
//! Adding a capability is one module and one line in [`HandlerSet::builtin`].
//!
//! A child an actor spawns is granted at most what its parent holds: each
//! handler says, in [`Handler::within`], whether a child's config is within
//! its parent's, and [`Grants::within`] asks every one of them.

pub mod config;
mod environment;
mod filesystem;
mod http_client;
mod http_framework;
mod http_record;
mod message_server;
mod random;
mod runtime;
mod store;
mod supervisor;
mod timing;

pub use config::ConfigError;
pub use filesystem::{CommandSandbox, command_sandbox};
pub(crate) use http_framework::EPHEMERAL_PORTS;
pub use message_server::{
    CHANNEL_CLOSE, CHANNEL_MESSAGE, CHANNEL_OPEN, ChannelAccept, HANDLE_REQUEST, HANDLE_SEND,
};
pub use runtime::{MAX_LOG_BYTES, MAX_SHUTDOWN_DATA_BYTES};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::Engine;
use wasmtime::component::Linker;

use crate::actor::{ACTOR_INTERFACE, ActorStore, Extensions};
use crate::error::SpawnError;
use crate::manifest::Manifest;
use crate::packages::{self, Package};
use crate::wasm::{ExportKey, ExportRegistry};

/// Interfaces that declare only types: components import them, and there is
/// nothing to provide but their name (canonical; linked under every package).
const TYPE_INTERFACES: &[&str] = &[
    "ntwk:theater/types",
    "ntwk:theater/http-types",
    "ntwk:theater/websocket-types",
];

/// One host capability, granted by a `[[handlers]]` entry whose `type` is
/// its [`name`](Handler::name).
pub trait Handler: Send + Sync + 'static {
    /// The manifest `type` that grants it.
    fn name(&self) -> &'static str;

    /// The interfaces it provides to actors (their imports), by canonical
    /// name (`ntwk:theater/timing`): it provides them under every package
    /// name.
    fn imports(&self) -> &'static [&'static str];

    /// Granted to every actor, listed in its manifest or not.
    fn always_granted(&self) -> bool {
        false
    }

    /// Checks the `config` table of its `[[handlers]]` entry (empty when
    /// the handler is granted without one) and keeps what the actor's host
    /// functions will need in `extensions`. Called once per spawn. Unknown
    /// keys are errors; the error names its key (see [`config`]). By
    /// default a handler takes no config.
    fn configure(
        &self,
        config: &toml::Table,
        _extensions: &mut Extensions,
    ) -> Result<(), ConfigError> {
        config::known_keys(config, &[])
    }

    /// Whether `child` grants no more than `parent` holds: for a spawn an
    /// actor asks for (never an operator's), when both the child's manifest
    /// and its parent's grant this handler. The error names the key that
    /// grants more. Both configs are valid ([`configure`](Self::configure)
    /// accepted them). By default the child's config must equal its
    /// parent's, which is never more.
    fn within(&self, child: &Granted<'_>, parent: &Granted<'_>) -> Result<(), ConfigError> {
        if child.config == parent.config {
            return Ok(());
        }
        Err(ConfigError::from(
            "a child may be granted it only with its parent's config, unchanged",
        ))
    }

    /// Defines its host functions under `package`. Called once per runtime
    /// for each package of [`Package::ALL`], so that actors find every
    /// function under either name: define each interface as
    /// `package.name_of(INTERFACE)`. An embedder's interface outside
    /// Theater's packages is defined once, when `package` is
    /// [`Package::CANONICAL`].
    fn add_to_linker(
        &self,
        linker: &mut Linker<ActorStore>,
        package: Package,
    ) -> wasmtime::Result<()>;

    /// Registers the exports it calls on actors. `listed` says whether the
    /// manifest names this handler (and so may require its exports). What it
    /// registers must depend on `listed` alone: the runtime resolves each
    /// registry once per component.
    fn exports(&self, exports: &mut ExportRegistry, listed: bool);
}

/// A handler's config as one manifest grants it.
pub struct Granted<'a> {
    pub config: &'a toml::Table,
    /// The directory of that manifest, which relative paths in the config
    /// may be relative to.
    pub dir: &'a Path,
}

/// The capabilities a runtime offers.
#[derive(Clone)]
pub struct HandlerSet {
    handlers: Vec<Arc<dyn Handler>>,
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
    pub fn with(mut self, handler: impl Handler) -> Self {
        self.handlers.retain(|h| h.name() != handler.name());
        self.handlers.push(Arc::new(handler));
        self
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

    /// The handlers a manifest grants, each validated once.
    pub fn grants(&self, manifest: &Manifest) -> Result<Grants, SpawnError> {
        let mut granted: Vec<Grant> = self
            .handlers
            .iter()
            .filter(|h| h.always_granted())
            .map(|h| Grant {
                handler: h.clone(),
                listed: false,
                config: toml::Table::new(),
                line: 0,
                index: None,
            })
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
            let grant = Grant {
                handler: handler.clone(),
                listed: true,
                config: entry.config.clone(),
                line: entry.line,
                index: Some(index),
            };
            match granted
                .iter_mut()
                .find(|g| g.handler.name() == handler.name())
            {
                // Listing an always-granted handler is fine; it makes its exports required.
                Some(existing) => *existing = grant,
                None => granted.push(grant),
            }
        }
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
    handler: Arc<dyn Handler>,
    /// Whether the manifest lists it.
    listed: bool,
    config: toml::Table,
    /// Line of its `[[handlers]]` entry, 0 if not listed.
    line: usize,
    /// Its place among the manifest's `[[handlers]]`, if listed.
    index: Option<usize>,
}

impl Grant {
    /// The line an error about `key` of its config points at: the key's
    /// own, else its entry's.
    fn line_of(&self, key: Option<&str>, lines: &BTreeMap<String, usize>) -> usize {
        key.zip(self.index)
            .and_then(|(key, index)| lines.get(&format!("handlers.{index}.config.{key}")))
            .copied()
            .unwrap_or(self.line)
    }
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
    pub fn exports(&self) -> ExportRegistry {
        let mut exports = ExportRegistry::default();
        exports.register_function_no_result::<(String,)>(ACTOR_INTERFACE, "init");
        for grant in &self.granted {
            grant.handler.exports(&mut exports, grant.listed);
        }
        exports
    }

    /// What [`exports`](Self::exports) is built from.
    pub fn export_key(&self) -> ExportKey {
        self.granted
            .iter()
            .map(|grant| (grant.handler.name(), grant.listed))
            .collect()
    }

    /// Each granted handler's per-actor state, from its config.
    pub fn configure(&self) -> Result<Extensions, SpawnError> {
        let mut extensions = Extensions::default();
        for grant in &self.granted {
            grant
                .handler
                .configure(&grant.config, &mut extensions)
                .map_err(|e| SpawnError::HandlerConfig {
                    manifest: self.manifest.clone(),
                    line: grant.line_of(e.key.as_deref(), &self.lines),
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
            let child = Granted {
                config: &grant.config,
                dir: &self.dir,
            };
            let held_config = Granted {
                config: &held.config,
                dir: &parent.dir,
            };
            grant
                .handler
                .within(&child, &held_config)
                .map_err(|e| SpawnError::BeyondParent {
                    manifest: self.manifest.clone(),
                    line: grant.line_of(e.key.as_deref(), &self.lines),
                    what: format!("capability `{name}`"),
                    reason: e.message,
                })?;
        }
        Ok(())
    }
}
