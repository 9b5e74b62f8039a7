//! A notes actor on the filesystem interface: each note is a file under
//! `notes/` in the directory its manifest grants. Its state counts the
//! notes written, `{"writes": N}`. Besides the notes commands it has one
//! command per filesystem function, taking paths as given, so the host's
//! confinement can be tried from the outside.

wit_bindgen::generate!({
    path: "../../wit",
    world: "filesystem-actor",
});

use exports::ntwk::theater::actor::Guest as Actor;
use exports::ntwk::theater::message_server_client::{ChannelAccept, Guest as MessageServer};
use ntwk::theater::filesystem;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

type State = Option<Vec<u8>>;

/// Where the notes live, inside the granted directory.
const NOTES_DIR: &str = "notes";

#[derive(Serialize, Deserialize, Default)]
struct Notes {
    writes: u64,
}

/// A command; the reply is JSON.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Request {
    /// Writes the note `name`, replacing it if there.
    Write { name: String, text: String },
    /// Replies the text of the note `name`.
    Read(String),
    /// Replies the names of every note.
    List(()),
    /// Deletes the note `name`.
    Delete(String),
    /// `read-file` of a path as given; replies its bytes as text.
    ReadPath(String),
    /// `write-file` of a path as given.
    WritePath { path: String, text: String },
    /// `list-files` of a path as given.
    ListPath(String),
    /// `delete-file` of a path as given.
    DeletePath(String),
    /// `create-dir` of a path as given.
    Mkdir(String),
    /// `delete-dir` of a path as given.
    Rmdir(String),
    /// `path-exists` of a path as given.
    Exists(String),
    /// `execute-command`: replies its output.
    Run {
        #[serde(default)]
        dir: String,
        command: String,
        #[serde(default)]
        args: Vec<String>,
    },
    /// `execute-nix-command`: replies its output.
    Nix {
        #[serde(default)]
        dir: String,
        command: String,
    },
    /// Replies the state.
    State(()),
}

fn load(state: &State) -> Result<Notes, String> {
    match state {
        None => Ok(Notes::default()),
        Some(bytes) => serde_json::from_slice(bytes)
            .map_err(|e| format!("file-notes state is not {{\"writes\": N}}: {e}")),
    }
}

fn note(name: &str) -> String {
    format!("{NOTES_DIR}/{name}")
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Runs `msg`, counting writes in `notes`; returns the reply.
fn run(notes: &mut Notes, msg: &[u8]) -> Result<Value, String> {
    let request: Request = serde_json::from_slice(msg).map_err(|e| {
        format!("expected a command like {{\"write\": {{\"name\": n, \"text\": t}}}}, {{\"read\": n}}, {{\"list\": null}} or {{\"delete\": n}}: {e}")
    })?;
    let reply = match request {
        Request::Write { name, text } => {
            filesystem::write_file(&note(&name), &text)?;
            notes.writes += 1;
            json!({ "written": name })
        }
        Request::Read(name) => {
            json!({ "name": name, "text": text(filesystem::read_file(&note(&name))?) })
        }
        Request::List(()) => json!({ "notes": filesystem::list_files(NOTES_DIR)? }),
        Request::Delete(name) => {
            filesystem::delete_file(&note(&name))?;
            json!({ "deleted": name })
        }
        Request::ReadPath(path) => {
            let content = filesystem::read_file(&path)?;
            json!({ "path": path, "bytes": content.len(), "text": text(content) })
        }
        Request::WritePath { path, text } => {
            filesystem::write_file(&path, &text)?;
            notes.writes += 1;
            json!({ "written": path })
        }
        Request::ListPath(path) => json!({ "files": filesystem::list_files(&path)? }),
        Request::DeletePath(path) => {
            filesystem::delete_file(&path)?;
            json!({ "deleted": path })
        }
        Request::Mkdir(path) => {
            filesystem::create_dir(&path)?;
            json!({ "created": path })
        }
        Request::Rmdir(path) => {
            filesystem::delete_dir(&path)?;
            json!({ "removed": path })
        }
        Request::Exists(path) => json!({ "exists": filesystem::path_exists(&path)? }),
        Request::Run { dir, command, args } => {
            json!({ "output": filesystem::execute_command(&dir, &command, &args)? })
        }
        Request::Nix { dir, command } => {
            json!({ "output": filesystem::execute_nix_command(&dir, &command)? })
        }
        Request::State(()) => json!(notes),
    };
    Ok(reply)
}

fn save(notes: &Notes) -> State {
    Some(serde_json::to_vec(notes).expect("the state serializes"))
}

struct Component;

impl Actor for Component {
    fn init(state: State, _params: (String,)) -> Result<(State,), String> {
        let notes = load(&state)?;
        filesystem::create_dir(NOTES_DIR)?;
        Ok((save(&notes),))
    }
}

impl MessageServer for Component {
    fn handle_send(state: State, params: (Vec<u8>,)) -> Result<(State,), String> {
        let mut notes = load(&state)?;
        run(&mut notes, &params.0)?;
        Ok((save(&notes),))
    }

    fn handle_request(state: State, params: (Vec<u8>,)) -> Result<(State, (Vec<u8>,)), String> {
        let mut notes = load(&state)?;
        let reply = run(&mut notes, &params.0)?;
        Ok((save(&notes), (reply.to_string().into_bytes(),)))
    }

    fn handle_channel_open(
        state: State,
        _params: (Vec<u8>,),
    ) -> Result<(State, ChannelAccept), String> {
        let refuse = ChannelAccept {
            accepted: false,
            message: Some(br#""file-notes takes no channels""#.to_vec()),
        };
        Ok((state, refuse))
    }

    fn handle_channel_message(
        state: State,
        _params: (String, Vec<u8>),
    ) -> Result<(State,), String> {
        Ok((state,))
    }

    fn handle_channel_close(state: State, _params: (String,)) -> Result<(State,), String> {
        Ok((state,))
    }
}

export!(Component);
