//! Built against `theater:simple`: at init it records that it ran, then
//! asks to stop itself with `runtime.shutdown`, passing the `farewell` of
//! its initial state (`{"farewell": "..."}`; "done" without one) as the
//! data its supervisor receives. It takes no calls.

wit_bindgen::generate!({
    inline: "
        package example:simple-quitter;

        world quitter {
            import theater:simple/runtime;
            export theater:simple/actor;
        }
    ",
    path: ["../target/wit/theater-simple"],
    world: "quitter",
    generate_all,
});

use exports::theater::simple::actor::Guest as Actor;
use serde_json::{Value, json};
use theater::simple::runtime::{log, shutdown};

struct Component;

impl Actor for Component {
    fn init(state: Option<Vec<u8>>, params: (String,)) -> Result<(Option<Vec<u8>>,), String> {
        let mut value: Value = match &state {
            Some(bytes) => serde_json::from_slice(bytes)
                .map_err(|e| format!("the initial state must be JSON: {e}"))?,
            None => json!({}),
        };
        let farewell = value["farewell"].as_str().unwrap_or("done").to_owned();
        value["ran"] = json!(true);
        log(&format!("simple-quitter {} ran; stopping itself", params.0));
        shutdown(Some(farewell.as_bytes()))?;
        let state = serde_json::to_vec(&value).map_err(|e| e.to_string())?;
        Ok((Some(state),))
    }
}

export!(Component);
