//! Parsing manifests of both forms, and the errors bad ones get.

use super::*;

fn parse(text: &str) -> Result<Manifest, ManifestError> {
    Manifest::parse(
        text,
        Path::new("/actors/x/manifest.toml"),
        Path::new("/actors/x"),
    )
}

#[test]
fn minimal_manifest_gets_defaults() {
    let m = parse("name = \"counter\"\ncomponent_path = \"counter.wasm\"\n").unwrap();
    assert_eq!(m.name, "counter");
    assert_eq!(m.component_path, Path::new("/actors/x/counter.wasm"));
    assert_eq!(m.limits, Limits::default());
    assert!(m.handlers.is_empty() && m.warnings.is_empty());
}

#[test]
fn handlers_limits_and_inline_state() {
    let m = parse(
        r#"name = "c"
component_path = "c.wasm"
init_state = '{"count": 3}'

[limits]
memory_mb = 16
call_timeout_ms = 250

[[handlers]]
type = "runtime"
config = {}

[[handlers]]
type = "timing"
config = { max_sleep_duration = 1000 }
"#,
    )
    .unwrap();
    assert_eq!(m.init_state.as_deref(), Some(br#"{"count": 3}"#.as_slice()));
    assert_eq!(m.limits.memory_mb, 16);
    assert_eq!(m.limits.call_timeout_ms, 250);
    assert_eq!(m.limits.queue_capacity, DEFAULT_QUEUE_CAPACITY);
    assert_eq!(m.handlers.len(), 2);
    assert_eq!(
        (m.handlers[1].kind.as_str(), m.handlers[1].line),
        ("timing", 14)
    );
    assert_eq!(
        m.handlers[1].config["max_sleep_duration"].as_integer(),
        Some(1000)
    );
}

#[test]
fn missing_key_is_named() {
    let err = parse("name = \"c\"\n").unwrap_err();
    assert!(
        err.to_string()
            .contains("missing required key `component_path`"),
        "{err}"
    );
    assert!(
        err.to_string().starts_with("/actors/x/manifest.toml"),
        "{err}"
    );
}

#[test]
fn a_number_json_cannot_keep_is_refused_with_its_key_and_line() {
    for (value, key) in [
        ("{ ratio = nan }", "handlers.0.config.ratio"),
        ("{ sub = { far = -inf } }", "handlers.0.config.sub.far"),
        ("{ list = [1.0, inf] }", "handlers.0.config.list"),
    ] {
        let text = format!(
            "name = \"c\"\ncomponent_path = \"c.wasm\"\n\n[[handlers]]\ntype = \"timing\"\nconfig = {value}\n"
        );
        let err = parse(&text).unwrap_err();
        assert_eq!(err.line, Some(6), "{err}");
        assert!(err.message.contains(&format!("`{key}`")), "{err}");
    }
}

#[test]
fn a_parsed_manifest_reads_back_from_its_stored_form() {
    let m = parse(
        "name = \"c\"\ncomponent_path = \"c.wasm\"\n\n[[handlers]]\ntype = \"timing\"\nconfig = { when = 1979-05-27T07:32:00Z, ratio = 0.5, list = [1, 2.5] }\n",
    )
    .unwrap();
    let stored = serde_json::to_string(&m).unwrap();
    let back: Manifest = serde_json::from_str(&stored).unwrap();
    assert_eq!(serde_json::to_string(&back).unwrap(), stored);
}

#[test]
fn malformed_toml_names_the_line() {
    let err = parse("name = \"c\"\ncomponent_path = \"c.wasm\"\nthis is not toml\n").unwrap_err();
    assert_eq!(err.line, Some(3), "{err}");
}

#[test]
fn wrong_type_names_the_line() {
    let err = parse("name = \"c\"\ncomponent_path = 7\n").unwrap_err();
    assert_eq!(err.line, Some(2), "{err}");
}

#[test]
fn unknown_keys_are_warnings_with_lines() {
    let m = parse("name = \"c\"\ncomponent_path = \"c.wasm\"\ninit_data = \"x\"\n").unwrap();
    assert_eq!(m.warnings.len(), 1);
    assert!(
        m.warnings[0].contains(":3: unused manifest key `init_data`"),
        "{:?}",
        m.warnings
    );
}

#[test]
fn unknown_limit_is_an_error() {
    let err =
        parse("name = \"c\"\ncomponent_path = \"c.wasm\"\n[limits]\nmemory = 3\n").unwrap_err();
    assert!(err.to_string().contains("memory"), "{err}");
}

#[test]
fn zero_limits_are_refused() {
    let err = parse("name = \"c\"\ncomponent_path = \"c.wasm\"\n[limits]\nqueue_capacity = 0\n")
        .unwrap_err();
    assert!(err.to_string().contains("queue_capacity"), "{err}");
}

#[test]
fn arrays_where_tables_belong_are_refused_at_their_line() {
    let head = "name = \"c\"\ncomponent_path = \"c.wasm\"\n";
    for (rest, line, words) in [
        (
            "limits = [200, 5]\n",
            3,
            "`limits` must be a table (`[limits]` with `memory_mb = ...` and so on), not an array",
        ),
        ("limits = [1]\n", 3, "`limits` must be a table"),
        ("limits = 7\n", 3, "not an integer"),
        (
            "handlers = [[\"filesystem\", { path = \"/\" }]]\n",
            3,
            "each `handlers` entry must be a table",
        ),
        (
            "handlers = { type = \"runtime\" }\n",
            3,
            "`handlers` must be an array",
        ),
        (
            "[[handlers]]\ntype = \"runtime\"\nconfig = \"all\"\n",
            5,
            "`config` of a handler must be a table",
        ),
    ] {
        let err = parse(&format!("{head}{rest}")).unwrap_err();
        assert_eq!(err.line, Some(line), "{rest}: {err}");
        assert!(err.to_string().contains(words), "{rest}: {err}");
    }
}

#[test]
fn every_limit_is_range_checked_at_its_line() {
    let head = "name = \"c\"\ncomponent_path = \"c.wasm\"\n[limits]\n";
    for (rest, key) in [
        (
            "call_timeout_ms = 18446744073709551615\n",
            "call_timeout_ms",
        ),
        ("call_timeout_ms = 3600001\n", "call_timeout_ms"),
        ("max_message_bytes = 268435457\n", "max_message_bytes"),
        ("queue_capacity = 0\n", "queue_capacity"),
        ("memory_mb = -1\n", "memory_mb"),
        ("memory_mb = \"lots\"\n", "memory_mb"),
    ] {
        let err = parse(&format!("{head}{rest}")).unwrap_err();
        assert_eq!(err.line, Some(4), "{rest}: {err}");
        assert!(err.to_string().contains(key), "{rest}: {err}");
    }
    let m = parse(&format!("{head}call_timeout_ms = 3600000\n")).unwrap();
    assert_eq!(m.limits.call_timeout_ms, MAX_CALL_TIMEOUT_MS);
}

#[test]
fn lines_of_keys_are_kept_for_later_errors() {
    let m = parse("name = \"c\"\ncomponent_path = \"c.wasm\"\n\n[[handlers]]\ntype = \"timing\"\nconfig = { max_sleep_duration = 5,\n  min_sleep_duration = 1 }\n\n[limits]\nmemory_mb = 3\n").unwrap();
    assert_eq!(m.line_of("handlers.0.config.max_sleep_duration"), Some(6));
    assert_eq!(m.line_of("handlers.0.config.min_sleep_duration"), Some(7));
    assert_eq!(m.line_of("limits.memory_mb"), Some(10));
}

#[test]
fn a_child_has_no_limit_above_its_parent() {
    let parent = Limits {
        memory_mb: 64,
        ..Limits::default()
    };
    let child = Limits::default().inherited(&parent, |_| false);
    assert_eq!(child.memory_mb, 64);
    assert_eq!(child.call_timeout_ms, DEFAULT_CALL_TIMEOUT_MS);
    let child = Limits::default().inherited(&parent, |key| key == "memory_mb");
    assert_eq!(child.memory_mb, DEFAULT_MEMORY_MB);
    let parent = Limits::default();
    assert_eq!(parent.within(&parent), Ok(()));
    let child = Limits {
        memory_mb: DEFAULT_MEMORY_MB + 1,
        ..Limits::default()
    };
    let (key, message) = child.within(&parent).unwrap_err();
    assert_eq!(key, "memory_mb");
    assert!(
        message.contains("129, more than the parent's 128"),
        "{message}"
    );
}

#[test]
fn state_and_result_caps_are_limits() {
    let m = parse("name = \"c\"\ncomponent_path = \"c.wasm\"\n[limits]\nmax_state_bytes = 1000\nmax_result_bytes = 2000\n").unwrap();
    assert_eq!(
        (m.limits.max_state_bytes, m.limits.max_result_bytes),
        (1000, 2000)
    );
    let m = parse("name = \"c\"\ncomponent_path = \"c.wasm\"\n").unwrap();
    assert_eq!(m.limits.max_state_bytes, DEFAULT_MAX_STATE_BYTES);
    let err = parse("name = \"c\"\ncomponent_path = \"c.wasm\"\n[limits]\nmax_state_bytes = 0\n")
        .unwrap_err();
    assert!(err.to_string().contains("max_state_bytes"), "{err}");
    let err = parse(&format!(
        "name = \"c\"\ncomponent_path = \"c.wasm\"\n[limits]\nmax_result_bytes = {}\n",
        MAX_RESULT_BYTES + 1
    ))
    .unwrap_err();
    assert!(err.to_string().contains("max_result_bytes"), "{err}");
}

#[test]
fn the_2025_form_reads_as_todays() {
    let m = parse(
        r#"name = "c"
component = "c.wasm"
version = "0.2.0"
description = "short"
long_description = "long"
save_chain = true

[[handler]]
type = "message-server"

[[handler]]
type = "timing"
max_sleep_duration = 1000
min_sleep_duration = 5

[[handler]]
type = "filesystem"
path = "data"
"#,
    )
    .unwrap();
    assert_eq!(m.component_path, Path::new("/actors/x/c.wasm"));
    assert_eq!(m.long_description.as_deref(), Some("long"));
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
    let kinds: Vec<&str> = m.handlers.iter().map(|h| h.kind.as_str()).collect();
    assert_eq!(kinds, ["message-server", "timing", "filesystem"]);
    assert!(m.handlers[0].config.is_empty());
    assert_eq!(m.handlers[1].line, 12);
    assert_eq!(
        m.handlers[1].config["max_sleep_duration"].as_integer(),
        Some(1000)
    );
    // Handler errors find a setting's line under today's path.
    assert_eq!(m.line_of("handlers.1.config.min_sleep_duration"), Some(14));
    // A path setting of the 2025 form is relative to the manifest.
    assert_eq!(
        m.handlers[2].config["path"].as_str(),
        Some("/actors/x/data")
    );
}

#[test]
fn a_key_in_both_forms_is_an_error_naming_both() {
    for (text, line, first, second) in [
        (
            "name = \"c\"\ncomponent_path = \"a.wasm\"\ncomponent = \"b.wasm\"\n",
            3,
            "`component_path` (line 2)",
            "`component` (line 3)",
        ),
        (
            "name = \"c\"\ncomponent = \"c.wasm\"\n[[handlers]]\ntype = \"timing\"\n[[handler]]\ntype = \"random\"\n",
            5,
            "`handlers` (line 3)",
            "`handler` (line 5)",
        ),
        (
            "name = \"c\"\ncomponent = \"c.wasm\"\n[[handler]]\ntype = \"timing\"\nconfig = { max_sleep_duration = 5 }\nmin_sleep_duration = 1\n",
            6,
            "`config`",
            "`min_sleep_duration`",
        ),
    ] {
        let err = parse(text).unwrap_err();
        assert_eq!(err.line, Some(line), "{err}");
        let message = err.to_string();
        assert!(
            message.contains(first) && message.contains(second),
            "{message}"
        );
    }
    let err = parse("name = \"c\"\n").unwrap_err();
    assert!(err.to_string().contains("`component`"), "{err}");
    let err = parse(
        "name = \"c\"\ncomponent = \"c.wasm\"\n[[handler]]\ntype = \"random\"\n[[handler]]\npath = \"x\"\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("needs a `type`"), "{err}");
    assert_eq!(err.line, Some(6));
}

#[test]
fn the_2025_form_warns_of_what_it_does_not_act_on() {
    let m = parse(
        "name = \"c\"\ncomponent = \"c.wasm\"\ninit_data = 1\nsave_chain = false\n[permission_policy]\nfilesystem = \"read-only\"\n[[handler]]\ntype = \"runtime\"\n",
    )
    .unwrap();
    assert_eq!(m.warnings.len(), 3, "{:?}", m.warnings);
    assert!(m.warnings[0].ends_with(":3: unused manifest key `init_data`"));
    assert!(m.warnings[1].contains(":4: `save_chain = false` is ignored"));
    assert!(m.warnings[2].contains(":5: `permission_policy` is not enforced"));
    let m = parse("name = \"c\"\ncomponent = \"c.wasm\"\npermission_policy = {}\n").unwrap();
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
}

#[test]
fn missing_init_state_file_is_named() {
    let err = parse("name = \"c\"\ncomponent_path = \"c.wasm\"\ninit_state = \"nope.json\"\n")
        .unwrap_err();
    assert!(err.to_string().contains("/actors/x/nope.json"), "{err}");
    assert_eq!(err.line, Some(3));
}

#[test]
fn missing_file_is_named() {
    let err = Manifest::load("/definitely/not/here.toml").unwrap_err();
    assert!(
        err.to_string().contains("/definitely/not/here.toml"),
        "{err}"
    );
}
