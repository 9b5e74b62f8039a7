//! `ntwk:theater/random`: random numbers from the host's cryptographically
//! secure generator (`rand`'s thread generator, seeded and reseeded from the
//! operating system). Every value an actor gets is recorded in its chain, so
//! a replay can feed the same values back. See `docs/random-and-environment.md`.

use rand::{Rng, RngExt};
use wasmtime::component::Linker;

use super::recorded::{recorded, shown_by};
use super::{Handler, HostFunctions};
use crate::actor::ActorStore;
use crate::packages::Package;

const INTERFACE: &str = "ntwk:theater/random";
const BYTES: &str = "ntwk:theater/random.get-random-bytes";
const U64: &str = "ntwk:theater/random.get-random-u64";
const RANGE: &str = "ntwk:theater/random.get-random-range";

/// Most bytes one `get-random-bytes` call returns. Every value is copied
/// into the actor's chain; guards the chain against a guest that asks for
/// huge buffers.
pub const MAX_RANDOM_BYTES: u32 = 64 * 1024;

/// `type = "random"`; no config.
pub struct RandomHandler;

impl Handler for RandomHandler {
    const NAME: &'static str = "random";
    const IMPORTS: &'static [&'static str] = &[INTERFACE];
    type Config = ();
}

impl HostFunctions for RandomHandler {
    fn add_to_linker(
        &self,
        linker: &mut Linker<ActorStore>,
        package: Package,
    ) -> wasmtime::Result<()> {
        let mut random = linker.instance(&package.name_of(INTERFACE))?;
        random.func_wrap_async("get-random-bytes", |mut store, (len,): (u32,)| {
            Box::new(async move {
                let result = random_bytes(len);
                let shown = shown_by(|bytes: &Vec<u8>| hex::encode(bytes));
                recorded(&mut store, BYTES, (len,), result, shown).await
            })
        })?;
        random.func_wrap_async("get-random-u64", |mut store, (): ()| {
            Box::new(async move {
                let result: Result<u64, String> = Ok(rand::rng().next_u64());
                recorded(&mut store, U64, (), result, Clone::clone).await
            })
        })?;
        random.func_wrap_async("get-random-range", |mut store, (min, max): (u64, u64)| {
            Box::new(async move {
                let result = random_range(min, max);
                recorded(&mut store, RANGE, (min, max), result, Clone::clone).await
            })
        })?;
        Ok(())
    }
}

fn random_bytes(len: u32) -> Result<Vec<u8>, String> {
    if len > MAX_RANDOM_BYTES {
        return Err(format!(
            "asked for {len} random bytes, more than the limit of {MAX_RANDOM_BYTES} per call: ask in smaller pieces"
        ));
    }
    let mut bytes = vec![0; len as usize];
    rand::rng().fill_bytes(&mut bytes);
    Ok(bytes)
}

/// A uniformly drawn value in `[min, max)`.
fn random_range(min: u64, max: u64) -> Result<u64, String> {
    if min >= max {
        return Err(format!(
            "the range [{min}, {max}) is empty: `min` must be less than `max`"
        ));
    }
    Ok(rand::rng().random_range(min..max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_limits() {
        for _ in 0..1000 {
            let value = random_range(10, 13).unwrap();
            assert!((10..13).contains(&value));
        }
        assert_eq!(random_range(7, 8), Ok(7));
        assert!(random_range(5, 5).unwrap_err().contains("is empty"));
        assert_eq!(
            random_bytes(MAX_RANDOM_BYTES).unwrap().len(),
            MAX_RANDOM_BYTES as usize
        );
        assert!(
            random_bytes(MAX_RANDOM_BYTES + 1)
                .unwrap_err()
                .contains("limit of 65536")
        );
    }
}
