//! The README's example: a runtime embedded in a program, in memory.
//! Run it from the repository root: `cargo run -p theater --example embed`
//! (after `cargo xtask build-actors`).

use theater::host::{HANDLE_REQUEST, HANDLE_SEND};
use theater::{RuntimeConfig, TheaterRuntime};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // In memory: nothing is left behind for a later `theater server`.
    let runtime = TheaterRuntime::new(RuntimeConfig::ephemeral())?;
    let counter = runtime.spawn_file("actors/counter/manifest.toml").await?;
    counter
        .call_function::<(Vec<u8>,), ()>(HANDLE_SEND, (br#"{"add": 2}"#.to_vec(),))
        .await?;
    let (reply,) = counter
        .call_function::<(Vec<u8>,), (Vec<u8>,)>(HANDLE_REQUEST, (b"{}".to_vec(),))
        .await?;
    println!("{}", String::from_utf8_lossy(&reply)); // {"count":2}
    theater::chain::verify(&runtime.chain(counter.id())?)?;
    runtime.stop(counter.id()).await?;
    Ok(())
}
