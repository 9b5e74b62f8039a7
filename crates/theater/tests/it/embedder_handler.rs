//! An embedder adds its own capability through the one `Handler` trait.

use crate::common;

use std::path::Path;

use theater::actor::ActorStore;
use theater::host::Exports;
use theater::host::{
    ConfigError, Granted, Handler, HandlerConfig, HandlerSet, HostFunctions, config,
};
use theater::{Package, RuntimeConfig, SpawnError, TheaterRuntime};
use wasmtime::component::Linker;

/// Grants nothing to import, but requires `handle-request` and checks its
/// config: `greeting` must be a string.
struct Greeter;

/// What a manifest's `greeter` config says.
#[derive(Clone)]
struct Greeting(String);

impl HandlerConfig for Greeting {
    fn from_table(table: &toml::Table) -> Result<Self, ConfigError> {
        config::known_keys(table, &["greeting"])?;
        match config::string(table, "greeting", "a string")? {
            Some(greeting) => Ok(Greeting(greeting.to_owned())),
            None => Err(ConfigError::at("greeting", "`greeting` must be a string")),
        }
    }
}

impl Handler for Greeter {
    const NAME: &'static str = "greeter";
    const IMPORTS: &'static [&'static str] = &[];
    type Config = Greeting;

    /// A child greets as its parent does.
    fn within(
        &self,
        child: &Granted<'_, Greeting>,
        parent: &Granted<'_, Greeting>,
    ) -> Result<(), ConfigError> {
        match child.config.0 == parent.config.0 {
            true => Ok(()),
            false => Err(ConfigError::at(
                "greeting",
                "a child greets as its parent does",
            )),
        }
    }
}

impl HostFunctions for Greeter {
    fn add_to_linker(
        &self,
        _linker: &mut Linker<ActorStore>,
        _package: Package,
    ) -> wasmtime::Result<()> {
        Ok(())
    }

    fn exports(&self, exports: &mut Exports, listed: bool) {
        exports
            .register_function::<(Vec<u8>,), (Vec<u8>,)>(
                "ntwk:theater/message-server-client",
                "handle-request",
            )
            .required(listed);
    }
}

fn runtime() -> TheaterRuntime {
    let mut config = RuntimeConfig::ephemeral();
    config.home = Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("theater-home"));
    config.handlers = HandlerSet::builtin().with(Greeter);
    TheaterRuntime::new(config).unwrap()
}

#[tokio::test]
async fn a_custom_handler_is_granted_configured_and_checked() {
    let runtime = runtime();
    let good = common::manifest_for(
        "echo",
        "name = \"e\"\ncomponent_path = \"echo.wasm\"\n[[handlers]]\ntype = \"greeter\"\nconfig = { greeting = \"hi\" }\n",
    );
    runtime.spawn(&good).await.unwrap();

    let bad = common::manifest_for(
        "echo",
        "name = \"e\"\ncomponent_path = \"echo.wasm\"\n[[handlers]]\ntype = \"greeter\"\nconfig = { greeting = 3 }\n",
    );
    let err = runtime.spawn(&bad).await.unwrap_err();
    assert!(
        matches!(err, SpawnError::HandlerConfig { line: 5, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("`greeting` must be a string"),
        "{err}"
    );

    // Its required export is checked like a built-in's.
    let minimal = common::manifest_for(
        "minimal",
        "name = \"m\"\ncomponent_path = \"minimal.wasm\"\n[[handlers]]\ntype = \"greeter\"\nconfig = { greeting = \"hi\" }\n",
    );
    let err = runtime.spawn(&minimal).await.unwrap_err();
    assert!(matches!(err, SpawnError::MissingExport { .. }), "{err}");
}
