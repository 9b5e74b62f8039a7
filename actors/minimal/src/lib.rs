//! The smallest actor: it exports only `actor.init` and takes no messages.

wit_bindgen::generate!({
    path: "../../wit",
    world: "minimal",
});

use exports::ntwk::theater::actor::Guest as Actor;

struct Component;

impl Actor for Component {
    fn init(state: Option<Vec<u8>>, _params: (String,)) -> Result<(Option<Vec<u8>>,), String> {
        Ok((state,))
    }
}

export!(Component);
