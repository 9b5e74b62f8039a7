//! An embedder adds its own capability through the one `Handler` trait.

use crate::common;

use std::path::Path;

use theater::actor::{ActorStore, Extensions};
use theater::host::{ConfigError, Handler, HandlerSet};
use theater::wasm::ExportRegistry;
use theater::{Package, RuntimeConfig, SpawnError, TheaterRuntime};
use wasmtime::component::Linker;

/// Grants nothing to import, but requires `handle-request` and checks its
/// config: `greeting` must be a string.
struct Greeter;

impl Handler for Greeter {
    fn name(&self) -> &'static str {
        "greeter"
    }

    fn imports(&self) -> &'static [&'static str] {
        &[]
    }

    fn configure(
        &self,
        config: &toml::Table,
        _extensions: &mut Extensions,
    ) -> Result<(), ConfigError> {
        match config.get("greeting") {
            Some(toml::Value::String(_)) => Ok(()),
            _ => Err("`greeting` must be a string".into()),
        }
    }

    fn add_to_linker(
        &self,
        _linker: &mut Linker<ActorStore>,
        _package: Package,
    ) -> wasmtime::Result<()> {
        Ok(())
    }

    fn exports(&self, exports: &mut ExportRegistry, listed: bool) {
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
        matches!(err, SpawnError::HandlerConfig { line: 4, .. }),
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
