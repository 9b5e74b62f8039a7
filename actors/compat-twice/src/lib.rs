//! Exports `actor` under both package names, `ntwk:theater/actor` and
//! `theater:simple/actor`: a runtime cannot tell which `init` to call, and
//! must refuse it by name.

wit_bindgen::generate!({
    inline: "
        package test:compat-twice;

        world twice {
            export ntwk:theater/actor;
            export theater:simple/actor;
        }
    ",
    path: ["../../wit", "../target/wit/theater-simple"],
    world: "twice",
    generate_all,
});

type State = Option<Vec<u8>>;

struct Component;

impl exports::ntwk::theater::actor::Guest for Component {
    fn init(state: State, _params: (String,)) -> Result<(State,), String> {
        Ok((state,))
    }
}

impl exports::theater::simple::actor::Guest for Component {
    fn init(state: State, _params: (String,)) -> Result<(State,), String> {
        Ok((state,))
    }
}

export!(Component);
