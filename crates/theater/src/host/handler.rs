//! The shape every capability has: host functions linked once per runtime
//! ([`HostFunctions`]), a typed config checked once per manifest
//! ([`HandlerConfig`]), per-actor state made from it at each spawn and a
//! comparison of a child's grant with its parent's, and the runtime's hooks
//! for what happens to actors ([`Handler`]). The runtime holds each
//! capability behind [`AnyHandler`], which hides its config type.

use std::any::Any;
use std::path::Path;
use std::sync::Arc;

use wasmtime::component::Linker;

use super::config::ConfigError;
use crate::actor::{
    ActorStore, ChildEvent, ChildLink, Decision, Exit, Extensions, RuntimeServices,
};
use crate::packages::Package;
use crate::wasm::ExportRegistry;

/// The exports capabilities call on actors, by the store data they bind to.
pub type Exports = ExportRegistry<ActorStore>;

/// The host functions of a capability and the exports it calls: linked
/// once per runtime, whatever any manifest says.
pub trait HostFunctions: Send + Sync + 'static {
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
    /// registry once per component. By default it calls none.
    fn exports(&self, _exports: &mut Exports, _listed: bool) {}
}

/// A handler's config, read from the `config` table of its `[[handlers]]`
/// entry (empty when the handler is granted without one) once per
/// manifest.
pub trait HandlerConfig: Clone + Send + Sync + Sized + 'static {
    /// Reads `table`. Unknown keys are errors; every error names its key
    /// (see [`config`](super::config)).
    fn from_table(table: &toml::Table) -> Result<Self, ConfigError>;
}

/// A handler that takes no config: every key is refused.
impl HandlerConfig for () {
    fn from_table(table: &toml::Table) -> Result<(), ConfigError> {
        super::config::none(table)
    }
}

/// A config read once and shared by every actor its manifest spawns.
impl<T: HandlerConfig> HandlerConfig for Arc<T> {
    fn from_table(table: &toml::Table) -> Result<Self, ConfigError> {
        T::from_table(table).map(Arc::new)
    }
}

/// One host capability, granted by a `[[handlers]]` entry whose `type` is
/// its [`NAME`](Handler::NAME).
pub trait Handler: HostFunctions {
    /// The manifest `type` that grants it.
    const NAME: &'static str;

    /// The interfaces it provides to actors (their imports), by canonical
    /// name (`ntwk:theater/timing`): it provides them under every package
    /// name.
    const IMPORTS: &'static [&'static str];

    /// Granted to every actor, listed in its manifest or not.
    const ALWAYS_GRANTED: bool = false;

    /// Its config, checked once per manifest.
    type Config: HandlerConfig;

    /// Keeps what one actor's host functions will need in `extensions`.
    /// Called once per spawn. By default they find a clone of the config.
    fn configure(
        &self,
        config: &Self::Config,
        extensions: &mut Extensions,
    ) -> Result<(), ConfigError> {
        extensions.insert(config.clone());
        Ok(())
    }

    /// Whether `child` grants no more than `parent` holds: for a spawn an
    /// actor asks for (never an operator's), when both the child's manifest
    /// and its parent's grant this handler. The error names the key that
    /// grants more. By default the child's config table must equal its
    /// parent's, which is never more.
    fn within(
        &self,
        child: &Granted<'_, Self::Config>,
        parent: &Granted<'_, Self::Config>,
    ) -> Result<(), ConfigError> {
        if child.table == parent.table {
            return Ok(());
        }
        Err(ConfigError::from(
            "a child may be granted it only with its parent's config, unchanged",
        ))
    }

    /// A supervised actor failed or asked to end: what its task does next,
    /// if this capability supervises it (its terms are of this capability's
    /// making). By default it does not.
    fn child_event(
        &self,
        _runtime: &dyn RuntimeServices,
        _link: &ChildLink,
        _event: &ChildEvent,
    ) -> Option<Decision> {
        None
    }

    /// An actor ended and the runtime has forgotten it: what this
    /// capability keeps about it for the whole runtime goes.
    fn actor_ended(&self, _runtime: &dyn RuntimeServices, _exit: &Exit) {}
}

/// A handler's config as one manifest grants it.
pub struct Granted<'a, C> {
    /// What [`Handler::check`] made of it.
    pub config: &'a C,
    /// The table as the manifest wrote it.
    pub table: &'a toml::Table,
    /// The directory of that manifest, which relative paths in the config
    /// may be relative to.
    pub dir: &'a Path,
}

/// A [`Handler`] whatever its config type, as the runtime holds it.
pub(crate) trait AnyHandler: HostFunctions {
    fn name(&self) -> &'static str;
    fn imports(&self) -> &'static [&'static str];
    fn always_granted(&self) -> bool;
    /// Reads its config from `table`, kept with the handler that reads it.
    fn check(self: Arc<Self>, table: &toml::Table) -> Result<Arc<dyn CheckedConfig>, ConfigError>;
    /// [`Handler::child_event`].
    fn child_event(
        &self,
        runtime: &dyn RuntimeServices,
        link: &ChildLink,
        event: &ChildEvent,
    ) -> Option<Decision>;
    /// [`Handler::actor_ended`].
    fn actor_ended(&self, runtime: &dyn RuntimeServices, exit: &Exit);
}

impl<H: Handler> AnyHandler for H {
    fn name(&self) -> &'static str {
        H::NAME
    }

    fn imports(&self) -> &'static [&'static str] {
        H::IMPORTS
    }

    fn always_granted(&self) -> bool {
        H::ALWAYS_GRANTED
    }

    fn check(self: Arc<Self>, table: &toml::Table) -> Result<Arc<dyn CheckedConfig>, ConfigError> {
        Ok(Arc::new(Checked {
            config: H::Config::from_table(table)?,
            handler: self,
            table: table.clone(),
        }))
    }

    fn child_event(
        &self,
        runtime: &dyn RuntimeServices,
        link: &ChildLink,
        event: &ChildEvent,
    ) -> Option<Decision> {
        Handler::child_event(self, runtime, link, event)
    }

    fn actor_ended(&self, runtime: &dyn RuntimeServices, exit: &Exit) {
        Handler::actor_ended(self, runtime, exit);
    }
}

/// One handler's config, checked: what every spawn from the same manifest
/// and every comparison with a child's grant starts from.
pub(crate) trait CheckedConfig: Send + Sync {
    /// [`Handler::configure`].
    fn configure(&self, extensions: &mut Extensions) -> Result<(), ConfigError>;
    /// [`Handler::within`]; `parent` is the parent's grant of a handler of
    /// the same name.
    fn within(
        &self,
        dir: &Path,
        parent: &dyn CheckedConfig,
        parent_dir: &Path,
    ) -> Result<(), ConfigError>;
    fn as_any(&self) -> &dyn Any;
}

struct Checked<H: Handler> {
    handler: Arc<H>,
    config: H::Config,
    table: toml::Table,
}

impl<H: Handler> Checked<H> {
    fn granted<'a>(&'a self, dir: &'a Path) -> Granted<'a, H::Config> {
        Granted {
            config: &self.config,
            table: &self.table,
            dir,
        }
    }
}

impl<H: Handler> CheckedConfig for Checked<H> {
    fn configure(&self, extensions: &mut Extensions) -> Result<(), ConfigError> {
        self.handler.configure(&self.config, extensions)
    }

    fn within(
        &self,
        dir: &Path,
        parent: &dyn CheckedConfig,
        parent_dir: &Path,
    ) -> Result<(), ConfigError> {
        // Both grants come from the one runtime's handler of this name.
        let Some(parent) = parent.as_any().downcast_ref::<Checked<H>>() else {
            return Err(ConfigError::from(
                "the parent holds this capability from a different handler",
            ));
        };
        self.handler
            .within(&self.granted(dir), &parent.granted(parent_dir))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
