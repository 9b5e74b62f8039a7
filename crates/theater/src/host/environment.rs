//! `ntwk:theater/environment`: the host's environment variables that the
//! manifest allow-lists, and no others. Every value an actor gets is
//! recorded in its chain. See `docs/random-and-environment.md`.

use wasmtime::StoreContextMut;
use wasmtime::component::Linker;

use super::config::{self, ConfigError};
use super::recorded::{recorded, whole};
use super::{Granted, Handler, HandlerConfig, HostFunctions};
use crate::actor::ActorStore;
use crate::packages::Package;

const INTERFACE: &str = "ntwk:theater/environment";
const GET_VAR: &str = "ntwk:theater/environment.get-var";
const LIST_VARS: &str = "ntwk:theater/environment.list-vars";

const ALLOWED_KEY: &str = "allowed_vars";

/// `type = "environment"`, config `{ allowed_vars = ["NAME", ...] }`
/// (default: none).
pub struct EnvironmentHandler;

impl Handler for EnvironmentHandler {
    const NAME: &'static str = "environment";
    const IMPORTS: &'static [&'static str] = &[INTERFACE];
    type Config = AllowedVars;

    /// A child may read only variables its parent may read.
    fn within(
        &self,
        child: &Granted<'_, AllowedVars>,
        parent: &Granted<'_, AllowedVars>,
    ) -> Result<(), ConfigError> {
        config::subset(ALLOWED_KEY, &child.config.0, &parent.config.0)
    }
}

impl HostFunctions for EnvironmentHandler {
    fn add_to_linker(
        &self,
        linker: &mut Linker<ActorStore>,
        package: Package,
    ) -> wasmtime::Result<()> {
        let mut environment = linker.instance(&package.name_of(INTERFACE))?;
        environment.func_wrap_async("get-var", |mut store, (name,): (String,)| {
            Box::new(async move {
                let value = allowed(&store)?.get(&name);
                recorded(&mut store, GET_VAR, (&name,), value, whole).await
            })
        })?;
        environment.func_wrap_async("list-vars", |mut store, (): ()| {
            Box::new(async move {
                let vars = allowed(&store)?.list();
                recorded(&mut store, LIST_VARS, (), vars, whole).await
            })
        })?;
        Ok(())
    }
}

/// The variables one actor may read, in manifest order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AllowedVars(Vec<String>);

impl AllowedVars {
    /// The value of `name` if it is allowed, set and valid UTF-8.
    fn get(&self, name: &str) -> Option<String> {
        if self.0.iter().any(|allowed| allowed == name) {
            std::env::var(name).ok()
        } else {
            None
        }
    }

    /// Every allowed variable that is set.
    fn list(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .filter_map(|name| Some((name.clone(), std::env::var(name).ok()?)))
            .collect()
    }
}

impl HandlerConfig for AllowedVars {
    fn from_table(config: &toml::Table) -> Result<Self, ConfigError> {
        config::known_keys(config, &[ALLOWED_KEY])?;
        let names = config::strings(config, ALLOWED_KEY, "of variable names, like [\"HOME\"]")?;
        let names = names.unwrap_or_default();
        if let Some(bad) = names.iter().find(|name| name.contains(['=', '\0'])) {
            return Err(ConfigError::at(
                ALLOWED_KEY,
                format!(
                    "`{ALLOWED_KEY}` holds `{}`, which is not a variable name (it has `=` or NUL in it)",
                    bad.escape_debug()
                ),
            ));
        }
        Ok(AllowedVars(names))
    }
}

fn allowed<'a>(store: &'a StoreContextMut<'_, ActorStore>) -> wasmtime::Result<&'a AllowedVars> {
    store
        .data()
        .extensions
        .get::<AllowedVars>()
        .ok_or_else(|| wasmtime::Error::msg("environment was not configured for this actor"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(config: &str) -> Result<AllowedVars, String> {
        AllowedVars::from_table(&toml::from_str(config).unwrap()).map_err(|e| e.message)
    }

    #[test]
    fn allow_list_parses_and_validates() {
        assert_eq!(parse(""), Ok(AllowedVars::default()));
        assert_eq!(
            parse("allowed_vars = [\"HOME\", \"LANG\"]"),
            Ok(AllowedVars(vec!["HOME".into(), "LANG".into()]))
        );
        assert!(
            parse("allowed_vars = \"HOME\"")
                .unwrap_err()
                .contains("must be a list")
        );
        assert!(
            parse("allowed_vars = [1]")
                .unwrap_err()
                .contains("must be a list")
        );
        assert!(
            parse("allowed_vars = [\"A=B\"]")
                .unwrap_err()
                .contains("not a variable name")
        );
        assert!(
            parse("allowed_vars = [\"\"]")
                .unwrap_err()
                .contains("must be a list")
        );
        assert!(
            parse("allowed = []")
                .unwrap_err()
                .contains("unknown setting")
        );
    }

    #[test]
    fn only_allowed_variables_are_read() {
        // PATH is set wherever tests run; reading needs no `set_var`.
        let vars = AllowedVars(vec!["PATH".into(), "THEATER_SURELY_UNSET_VAR".into()]);
        assert_eq!(vars.get("PATH"), std::env::var("PATH").ok());
        assert_eq!(vars.get("THEATER_SURELY_UNSET_VAR"), None);
        assert_eq!(AllowedVars::default().get("PATH"), None);
        let listed = vars.list();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].0, "PATH");
    }
}
