//! The real `theater` binary against real actors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

mod support;
use support::{actors_dir, assert_refused, assert_says, home, stderr, stdout};

fn counter_manifest() -> PathBuf {
    support::manifest("counter")
}

/// Runs the counter with `messages` (flags and their JSON) in a fresh
/// home, its chain written to `chain`.
fn run_counter_to(chain: &Path, messages: &[&str]) -> Output {
    let manifest = counter_manifest();
    let mut args = vec!["run", manifest.to_str().unwrap()];
    args.extend_from_slice(messages);
    args.extend(["--chain-out", chain.to_str().unwrap()]);
    theater(&args)
}

/// Runs `theater` in a fresh home.
fn theater(args: &[&str]) -> Output {
    theater_in(home().path(), args)
}

fn theater_in(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_theater"))
        .args(args)
        .env("THEATER_HOME", home)
        .output()
        .expect("theater runs")
}

#[test]
fn run_delivers_messages_in_order_and_verifies_the_chain() {
    let manifest = counter_manifest();
    let out = theater(&[
        "run",
        manifest.to_str().unwrap(),
        "--send",
        r#"{"add":1}"#,
        "--request",
        "{}",
        "--send",
        r#"{"add":2}"#,
        "--request",
        "{}",
    ]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    let first = text.find(r#"request {} -> {"count":1}"#).expect(&text);
    let second = text.find(r#"request {} -> {"count":3}"#).expect(&text);
    assert!(first < second);
    assert!(text.contains(r#"state: {"count":3}"#), "{text}");
    // init + 2 sends + 2 requests
    assert!(text.contains("chain verified: 5 events"), "{text}");
}

#[test]
fn run_json_is_one_parseable_document() {
    let manifest = counter_manifest();
    let out = theater(&[
        "run",
        manifest.to_str().unwrap(),
        "--send",
        r#"{"add":4}"#,
        "--request",
        "{}",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(report["state"]["count"], 4);
    assert_eq!(report["replies"][1]["reply"]["count"], 4);
    assert_eq!(report["chain"]["events"], 3);
    assert_eq!(report["chain"]["verified"], true);
    assert_eq!(report["name"], "counter");
}

#[test]
fn a_failing_message_is_reported_the_rest_delivered_and_the_exit_is_nonzero() {
    let manifest = counter_manifest();
    let out = theater(&[
        "run",
        manifest.to_str().unwrap(),
        "--send",
        r#""oops""#,
        "--send",
        r#"{"add":1}"#,
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains(r#"send "oops" -> error:"#), "{text}");
    assert!(text.contains(r#"state: {"count":1}"#), "{text}");
}

#[test]
fn exported_chain_verifies_and_one_changed_byte_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let chain = dir.path().join("out/chain.json");
    let out = run_counter_to(
        &chain,
        &["--send", r#"{"add":7}"#, "--send", r#"{"add":8}"#],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    let out = theater(&["verify", "--file", chain.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("chain verified: 3 events (head "));

    // The export's actor id is not hashed, but it must match the genesis event's.
    let original = std::fs::read_to_string(&chain).unwrap();
    let export: Value = serde_json::from_str(&original).unwrap();
    let actor = export["actor_id"].as_str().unwrap();
    let other = dir.path().join("other.json");
    std::fs::write(
        &other,
        original.replacen(actor, "00000000-0000-4000-8000-000000000000", 1),
    )
    .unwrap();
    let out = theater(&["verify", "--file", other.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    assert_says(&out, "event 0");

    // Change one digit inside the last event's data.
    let text = std::fs::read_to_string(&chain).unwrap();
    let at = text.rfind(r#""size":"#).expect("a state digest") + r#""size":"#.len();
    let mut bytes = text.into_bytes();
    bytes[at] = if bytes[at] == b'9' { b'8' } else { b'9' };
    std::fs::write(&chain, bytes).unwrap();

    let out = theater(&["verify", "--file", chain.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    assert_says(&out, "event 2");

    let out = theater(&["verify", "--file", chain.to_str().unwrap(), "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verified"], false);
    assert_eq!(report["first_bad_event"], 2);
}

#[test]
fn bad_input_gets_a_clear_error() {
    let out = theater(&["run", "/no/such/manifest.toml", "--send", "{}"]);
    assert_refused(&out, 1, "/no/such/manifest.toml");

    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "not a chain").unwrap();
    let out = theater(&["verify", "--file", junk.to_str().unwrap()]);
    assert_refused(&out, 1, "not a chain export");

    let out = theater(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    let out = theater(&["server", "--snapshot-every", "0"]);
    assert_refused(&out, 2, "--snapshot-every");
}

/// `theater run` says where an HTTP actor listens, and it answers there.
#[test]
fn run_prints_where_an_http_actor_listens() {
    use std::io::{BufRead, BufReader, Read, Write};

    let dir = tempfile::tempdir().unwrap();
    let hello = actors_dir().join("http-hello");
    let manifest = dir.path().join("manifest.toml");
    let text = format!(
        "name = \"http-hello\"\ncomponent_path = \"{}\"\ninit_state = '{{\"port\": 0}}'\n[[handlers]]\ntype = \"http-framework\"\nconfig = {{}}\n",
        hello.join("http-hello.wasm").display()
    );
    std::fs::write(&manifest, text).unwrap();
    let home = home();
    let mut child = Command::new(env!("CARGO_BIN_EXE_theater"))
        .args(["run", manifest.to_str().unwrap()])
        .env("THEATER_HOME", home.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut address = None;
    for _ in 0..50 {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(at) = line.find("listening on http://") {
            let rest = &line[at + "listening on http://".len()..];
            address = Some(rest.split_whitespace().next().unwrap().to_owned());
            break;
        }
    }
    let address = address.expect("a `listening on` line");
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("Hello from Theater!"), "{response}");
}

/// An actor whose `theater run` was killed comes back with `--resume`:
/// same id, its chain going on; a run that ended normally is not resumed.
#[test]
fn run_resume_continues_an_actor_after_sigkill() {
    let manifest = counter_manifest();
    let manifest = manifest.to_str().unwrap();
    let home = home();
    let (mut child, _, id) = run_until_interrupted(home.path(), manifest);
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();

    let args = ["run", manifest, "--resume", "--send", r#"{"add":5}"#];
    let out = theater_in(home.path(), &[&args[..], &["--request", "{}"]].concat());
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(text.contains(&format!("resumed counter ({id})")), "{text}");
    assert!(text.contains(r#"request {} -> {"count":5}"#), "{text}");
    // init, resume, send, request
    assert!(text.contains("chain verified: 4 events"), "{text}");

    // That run ended by itself, so the next one starts afresh.
    let out = theater_in(
        home.path(),
        &["run", manifest, "--resume", "--request", "{}"],
    );
    let text = stdout(&out);
    assert!(text.starts_with("started counter ("), "{text}");
    assert!(!text.contains(&id), "{text}");

    // Both chains, and the states stored with them, check out from disk.
    let out = theater(&["verify", "--home", home.path().to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (report["verified"].as_bool(), report["chains"].as_u64()),
        (Some(true), Some(2))
    );
    let out = theater(&["verify", "--home", "/no/such/home"]);
    assert_refused(&out, 1, "no chains are stored");
}

/// Ctrl-C interrupts a `theater run` without messages: it prints the state
/// and the verified chain, and the actor stays resumable.
#[test]
fn run_interrupted_by_ctrl_c_stays_resumable() {
    use std::io::Read;

    let manifest = counter_manifest();
    let manifest = manifest.to_str().unwrap();
    let home = home();
    let (mut child, mut out, id) = run_until_interrupted(home.path(), manifest);
    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    assert!(rest.contains("chain verified: 1 events"), "{rest}");
    assert!(
        rest.contains("`theater run --resume` continues it"),
        "{rest}"
    );

    let out = theater_in(
        home.path(),
        &["run", manifest, "--resume", "--request", "{}"],
    );
    let text = stdout(&out);
    assert!(text.contains(&format!("resumed counter ({id})")), "{text}");
}

/// Starts `theater run <manifest>` without messages, so it runs until
/// interrupted; returns it once it says so, with its stdout and the id.
fn run_until_interrupted(
    home: &Path,
    manifest: &str,
) -> (std::process::Child, impl std::io::Read, String) {
    use std::io::{BufRead, BufReader};

    let mut child = Command::new(env!("CARGO_BIN_EXE_theater"))
        .args(["run", manifest])
        .env("THEATER_HOME", home)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut started = String::new();
    out.read_line(&mut started).unwrap();
    let id = started
        .trim()
        .strip_prefix("started counter (")
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("unexpected first line: {started}"))
        .to_owned();
    let mut running = String::new();
    out.read_line(&mut running).unwrap();
    assert!(running.starts_with("running;"), "{running}");
    (child, out, id)
}

/// `theater run` on a manifest that is, or names as its `init_state` or
/// component, a FIFO (whose open would wait for a writer for ever) or
/// `/dev/zero` (bytes without end): a clear error, promptly.
#[test]
fn run_refuses_fifos_and_devices_in_every_role() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let echo = actors_dir().join("echo/echo.wasm");
    for special in [fifo.as_path(), Path::new("/dev/zero")] {
        let special = special.display();
        let init_state = dir.path().join("init-state.toml");
        std::fs::write(
            &init_state,
            format!(
                "name = \"s\"\ncomponent_path = \"{}\"\ninit_state = \"{special}\"\n",
                echo.display()
            ),
        )
        .unwrap();
        let component = dir.path().join("component.toml");
        std::fs::write(
            &component,
            format!("name = \"c\"\ncomponent_path = \"{special}\"\n"),
        )
        .unwrap();
        for manifest in [PathBuf::from(special.to_string()), init_state, component] {
            let home = home();
            let mut run = Command::new(env!("CARGO_BIN_EXE_theater"))
                .args(["run", manifest.to_str().unwrap(), "--request", "{}"])
                .env("THEATER_HOME", home.path())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let started = std::time::Instant::now();
            while run.try_wait().unwrap().is_none() {
                if started.elapsed() > std::time::Duration::from_secs(60) {
                    let _ = run.kill();
                    panic!("`theater run {}` hangs on {special}", manifest.display());
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let out = run.wait_with_output().unwrap();
            assert!(!out.status.success());
            let err = stderr(&out);
            assert!(
                err.contains("not a regular file") && err.contains(&special.to_string()),
                "{}: {err}",
                manifest.display()
            );
        }
    }
}

/// One rule for every command that delivers messages: JSON text only, so
/// a shell-quoting slip is caught before the actor starts.
#[test]
fn run_refuses_a_message_that_is_not_json_before_starting() {
    let manifest = counter_manifest();
    let home = home();
    let out = theater_in(
        home.path(),
        &["run", manifest.to_str().unwrap(), "--send", "oops"],
    );
    assert_refused(&out, 1, "`oops` is not JSON");
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    assert!(!home.path().join("chains.redb").exists(), "nothing started");
}

/// `run` shows the state as JSON (the init file's newline is not a blank
/// line) and the head hash in full, as `verify --file` does.
#[test]
fn run_and_verify_print_the_state_and_head_alike() {
    let dir = tempfile::tempdir().unwrap();
    let chain = dir.path().join("chain.json");
    let out = run_counter_to(&chain, &["--request", "{}"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("\n\n"), "a blank line: {text:?}");
    let head = |text: &str| {
        let at = text.find("(head ").expect("a head") + "(head ".len();
        text[at..].split(')').next().unwrap().to_owned()
    };
    let ran = head(&text);
    assert_eq!(ran.len(), 64, "{text}");
    let out = theater(&["verify", "--file", chain.to_str().unwrap()]);
    assert_eq!(head(&stdout(&out)), ran);
}

/// Log lines go to stderr without colour codes when stderr is a file.
#[test]
fn logs_carry_no_colour_codes_when_stderr_is_not_a_terminal() {
    // compat-basic logs a line in `init`.
    let manifest = support::manifest("compat-basic");
    let out = theater(&["run", manifest.to_str().unwrap(), "--request", "{}"]);
    let log = stderr(&out);
    assert!(log.contains("compat-basic"), "{log}");
    assert!(!log.contains('\u{1b}'), "{log:?}");
}

/// A chain export re-formatted after it was written (by `jq .`, say) is
/// named as such, not as an altered event.
#[test]
fn verify_names_a_reformatted_export() {
    let dir = tempfile::tempdir().unwrap();
    let chain = dir.path().join("chain.json");
    let out = run_counter_to(&chain, &["--send", r#"{"add":1}"#]);
    assert!(out.status.success(), "{}", stderr(&out));
    let export: Value = serde_json::from_str(&std::fs::read_to_string(&chain).unwrap()).unwrap();
    let pretty = dir.path().join("pretty.json");
    std::fs::write(&pretty, serde_json::to_string_pretty(&export).unwrap()).unwrap();
    let out = theater(&["verify", "--file", pretty.to_str().unwrap()]);
    assert_refused(&out, 3, "not in the canonical export form");
    let out = theater(&["verify", "--file", pretty.to_str().unwrap(), "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["canonical"], false);
}

#[test]
fn a_changed_cache_entry_or_an_open_cache_is_named_in_a_warning() {
    // A home with a cache of its own, not the one the tests share.
    let home = tempfile::tempdir().unwrap();
    let manifest = counter_manifest();
    let run = || {
        theater_in(
            home.path(),
            &["run", manifest.to_str().unwrap(), "--request", "{}"],
        )
    };
    let first = run();
    assert!(first.status.success(), "{}", stderr(&first));
    let entries: Vec<PathBuf> = std::fs::read_dir(home.path().join("cache"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir())
        .flat_map(|dir| std::fs::read_dir(dir).unwrap())
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let mut bytes = std::fs::read(&entries[0]).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    std::fs::write(&entries[0], &bytes).unwrap();

    let changed = run();
    let warning = stderr(&changed);
    assert!(changed.status.success(), "{warning}");
    assert!(
        warning.contains("ignoring cached compiled code"),
        "{warning}"
    );
    assert!(
        warning.contains(&entries[0].display().to_string()),
        "{warning}"
    );

    use std::os::unix::fs::PermissionsExt;
    let cache = home.path().join("cache");
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let open = run();
    let warning = stderr(&open);
    assert!(open.status.success(), "{warning}");
    assert!(
        warning.contains("not using the compiled-code cache"),
        "{warning}"
    );
    assert!(
        warning.contains(&format!("chmod 700 {}", cache.display())),
        "{warning}"
    );
}

/// `theater run` of an actor built against `theater:simple` that stops
/// itself in `init`: the run ends on its own, says so with the data, and
/// the actor is not resumed later.
#[test]
fn run_ends_with_an_actor_that_stops_itself() {
    let manifest = support::manifest("simple-quitter");
    let manifest = manifest.to_str().unwrap();
    let home = home();
    let out = theater_in(home.path(), &["run", manifest]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(text.starts_with("started simple-quitter ("), "{text}");
    // log, init, shutdown
    assert!(text.contains("chain verified: 3 events"), "{text}");
    assert!(
        text.contains(r#"simple-quitter stopped by itself (shutdown data: "all done")"#),
        "{text}"
    );
    assert!(
        text.contains(r#"state: {"farewell":"all done","ran":true}"#),
        "{text}"
    );

    let out = theater_in(home.path(), &["run", manifest, "--resume", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "stopped by itself");
    assert_eq!(report["shutdown_data"], "all done");
    let out = theater(&["verify", "--home", home.path().to_str().unwrap(), "--json"]);
    let verified: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The second run started a new actor: nothing was resumed.
    assert_eq!(verified["chains"], 2, "{verified}");
}

/// `theater run` of an actor built against `theater:simple` from a 2025
/// manifest whose `timing` settings are inline.
#[test]
fn run_takes_a_2025_manifest_and_actor() {
    let manifest = support::manifest("simple-timer");
    let out = theater(&[
        "run",
        manifest.to_str().unwrap(),
        "--request",
        r#"{"nap": 1}"#,
        "--request",
        r#"{"nap": 5000}"#,
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", stderr(&out));
    assert!(
        text.contains(r#"request {"nap": 1} -> {"napped":1,"naps":1}"#),
        "{text}"
    );
    assert!(text.contains(r#"{"nap": 5000} -> error: "#), "{text}");
    assert!(text.contains("1000"), "{text}");
    assert!(!stderr(&out).contains("warning:"), "{}", stderr(&out));
}

/// Runs the `simple-docs` actor (asking for 0.0.0.0 on a free port) with
/// `extra` flags until it says where it listens; returns the process, that
/// address and what it logged until then.
fn run_docs(home: &Path, extra: &[&str]) -> (std::process::Child, String, String) {
    use std::io::{BufRead, BufReader};

    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("manifest.toml");
    let text = format!(
        "name = \"simple-docs\"\ncomponent = \"{}\"\ninit_state = '{{\"host\": \"0.0.0.0\", \"port\": 0, \"store\": \"docs\"}}'\n[[handler]]\ntype = \"http-framework\"\n[[handler]]\ntype = \"store\"\n",
        actors_dir().join("simple-docs/simple-docs.wasm").display()
    );
    std::fs::write(&manifest, text).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_theater"))
        .args(["run", manifest.to_str().unwrap()])
        .args(extra)
        .env("THEATER_HOME", home)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut logged = String::new();
    for _ in 0..50 {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            break;
        }
        logged.push_str(&line);
        if let Some(at) = line.find("listening on http://") {
            let rest = &line[at + "listening on http://".len()..];
            let address = rest.split_whitespace().next().unwrap().to_owned();
            return (child, address, logged);
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    panic!("no `listening on` line:\n{logged}");
}

/// One HTTP/1.1 exchange on a fresh connection; the whole response.
fn http(address: &str, method: &str, path: &str, body: &str) -> String {
    use std::io::{Read, Write};

    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// An actor server asking for 0.0.0.0 listens on loopback under `theater
/// run`, which says so once, and on 0.0.0.0 with `--public-http`; a
/// catch-all route serves a named store either way.
#[test]
fn run_binds_actor_servers_to_loopback_unless_public_http() {
    let home = home();
    let (mut child, address, logged) = run_docs(home.path(), &[]);
    assert!(address.starts_with("127.0.0.1:"), "{address}");
    assert_eq!(
        logged.matches("listens on 127.0.0.1 instead").count(),
        1,
        "{logged}"
    );
    let put = http(&address, "PUT", "/docs/guide/intro", "hello");
    assert!(put.starts_with("HTTP/1.1 200"), "{put}");
    let get = http(&address, "GET", "/docs/guide/intro", "");
    assert!(get.ends_with("\r\n\r\nhello"), "{get}");
    child.kill().unwrap();
    child.wait().unwrap();

    let (mut child, address, logged) = run_docs(home.path(), &["--public-http"]);
    assert!(address.starts_with("0.0.0.0:"), "{address}");
    assert!(!logged.contains("instead"), "{logged}");
    let port = address.rsplit(':').next().unwrap();
    // All of 127/8 is loopback on Linux: only a wildcard bind answers there.
    let other = if cfg!(target_os = "linux") {
        "127.0.0.2"
    } else {
        "127.0.0.1"
    };
    let listed = http(&format!("{other}:{port}"), "GET", "/docs", "");
    assert!(listed.ends_with(r#"["guide/intro"]"#), "{listed}");
    child.kill().unwrap();
    child.wait().unwrap();
}
