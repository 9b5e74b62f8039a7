//! `ntwk:theater/store`: content-addressed storage. Actors that use the
//! same store id share its content and labels; stores live in
//! `<home>/store.redb`, shared by every actor of the runtime, or in memory
//! for a runtime without a home. See `docs/store.md`.

mod checks;
mod content;
mod databases;

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Value, json};
use wasmtime::StoreContextMut;
use wasmtime::component::{ComponentNamedList, ComponentType, Lift, Linker, LinkerInstance, Lower};

use super::recorded::{off_clock, recorded, shown_by};
use super::{Handler, HostFunctions};
use crate::actor::ActorStore;
use crate::packages::Package;
use checks::StoreError;
use content::{AtLabel, ContentStore};
use databases::Databases;

const INTERFACE: &str = "ntwk:theater/store";

/// `type = "store"`; no config.
#[derive(Default)]
pub struct StoreHandler {
    databases: Arc<Databases>,
}

impl Handler for StoreHandler {
    const NAME: &'static str = "store";
    const IMPORTS: &'static [&'static str] = &[INTERFACE];
    type Config = ();
}

impl HostFunctions for StoreHandler {
    fn add_to_linker(
        &self,
        linker: &mut Linker<ActorStore>,
        package: Package,
    ) -> wasmtime::Result<()> {
        let mut store = linker.instance(&package.name_of(INTERFACE))?;
        let dbs = &self.databases;
        define(&mut store, dbs, "new", |db, ()| db.create_store())?;
        define(
            &mut store,
            dbs,
            "store",
            |db, (id, content): (String, Vec<u8>)| db.store(&id, &content).map(ContentRef::from),
        )?;
        define(
            &mut store,
            dbs,
            "get",
            |db, (id, r): (String, ContentRef)| db.get(&id, &r.hash),
        )?;
        define(
            &mut store,
            dbs,
            "exists",
            |db, (id, r): (String, ContentRef)| db.exists(&id, &r.hash),
        )?;
        define(
            &mut store,
            dbs,
            "label",
            |db, (id, label, r): (String, String, ContentRef)| db.label(&id, &label, &r.hash),
        )?;
        define(
            &mut store,
            dbs,
            "get-by-label",
            |db, (id, label): (String, String)| {
                Ok(db.get_by_label(&id, &label)?.map(ContentRef::from))
            },
        )?;
        define(
            &mut store,
            dbs,
            "remove-label",
            |db, (id, label): (String, String)| db.remove_label(&id, &label),
        )?;
        define(
            &mut store,
            dbs,
            "remove-from-label",
            |db, (id, label, r): (String, String, ContentRef)| {
                db.remove_from_label(&id, &label, &r.hash)
            },
        )?;
        define(
            &mut store,
            dbs,
            "store-at-label",
            |db, (id, label, content): (String, String, Vec<u8>)| {
                db.store_at_label(&id, &label, &content, AtLabel::Add)
                    .map(ContentRef::from)
            },
        )?;
        define(
            &mut store,
            dbs,
            "replace-content-at-label",
            |db, (id, label, content): (String, String, Vec<u8>)| {
                db.store_at_label(&id, &label, &content, AtLabel::Replace)
                    .map(ContentRef::from)
            },
        )?;
        define(
            &mut store,
            dbs,
            "replace-at-label",
            |db, (id, label, r): (String, String, ContentRef)| {
                db.replace_at_label(&id, &label, &r.hash)
            },
        )?;
        define(&mut store, dbs, "list-labels", |db, (id,): (String,)| {
            db.list_labels(&id)
        })?;
        define(
            &mut store,
            dbs,
            "list-all-content",
            |db, (id,): (String,)| {
                Ok(db
                    .list_all_content(&id)?
                    .into_iter()
                    .map(ContentRef::from)
                    .collect::<Vec<_>>())
            },
        )?;
        define(
            &mut store,
            dbs,
            "calculate-total-size",
            |db, (id,): (String,)| db.total_size(&id),
        )?;
        Ok(())
    }
}

/// Defines the store function `name`: runs `op` on the runtime's database
/// in a blocking thread (the actor waits, the runtime does not), records
/// the call in the actor's chain and hands the actor the result.
fn define<P, T>(
    instance: &mut LinkerInstance<'_, ActorStore>,
    databases: &Arc<Databases>,
    name: &'static str,
    op: fn(&ContentStore, P) -> Result<T, StoreError>,
) -> wasmtime::Result<()>
where
    P: ComponentNamedList + Lift + Recorded + Send + 'static,
    T: ComponentType + Lower + Recorded + Send + 'static,
{
    let function: Arc<str> = format!("{INTERFACE}.{name}").into();
    let databases = databases.clone();
    instance.func_wrap_async(
        name,
        move |mut store: StoreContextMut<'_, ActorStore>, params: P| {
            let databases = databases.clone();
            let function = function.clone();
            Box::new(async move {
                let recorded_params = params.recorded();
                let home = store
                    .data()
                    .runtime()
                    .map(|runtime| runtime.home().map(Path::to_owned));
                let work = tokio::task::spawn_blocking(move || {
                    let home = home.ok_or(StoreError::ShuttingDown)?;
                    op(&*databases.for_home(home.as_deref())?, params)
                });
                let result = off_clock(&mut store, work)
                    .await
                    .map_err(|e| {
                        wasmtime::Error::msg(format!("`{function}` failed in the host: {e}"))
                    })?
                    .map_err(|e| e.to_string());
                let shown = shown_by(Recorded::recorded);
                recorded(&mut store, &function, recorded_params, result, shown).await
            })
        },
    )
}

/// `record content-ref`: a hex SHA-256.
#[derive(ComponentType, Lift, Lower, Serialize)]
#[component(record)]
struct ContentRef {
    hash: String,
}

impl From<String> for ContentRef {
    fn from(hash: String) -> Self {
        Self { hash }
    }
}

/// How a parameter or result of a store function appears in the chain.
/// Content appears by size only: the ref beside it names it, and the store
/// keeps it under that name, so the chain need not copy it.
trait Recorded {
    fn recorded(&self) -> Value;
}

impl Recorded for Vec<u8> {
    fn recorded(&self) -> Value {
        json!({ "bytes": self.len() })
    }
}

/// Types recorded as they are.
macro_rules! recorded_as_is {
    ($($type:ty),*) => {$(
        impl Recorded for $type {
            fn recorded(&self) -> Value {
                json!(self)
            }
        }
    )*};
}
recorded_as_is!(
    (),
    bool,
    u64,
    String,
    ContentRef,
    Option<ContentRef>,
    Vec<String>,
    Vec<ContentRef>
);

/// Parameter tuples, recorded as arrays.
macro_rules! recorded_tuple {
    ($($field:ident),+) => {
        impl<$($field: Recorded),+> Recorded for ($($field,)+) {
            #[allow(non_snake_case)]
            fn recorded(&self) -> Value {
                let ($($field,)+) = self;
                json!([$($field.recorded()),+])
            }
        }
    };
}
recorded_tuple!(A);
recorded_tuple!(A, B);
recorded_tuple!(A, B, C);
