//! The WIT package names Theater's interfaces are offered under.
//!
//! Every interface is defined once, in the canonical package `ntwk:theater`
//! (`wit/`), and offered under each name of [`Package::ALL`] with identical
//! types: actors of March 2025 use `ntwk:theater/…`, actors of mid/late
//! 2025 `theater:simple/…`. Host functions are linked under both names;
//! host code names exports by their canonical name and finds them under
//! whichever name the component exports them. See `docs/compatibility.md`.

use std::borrow::Cow;

/// A package name Theater's interfaces are offered under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Package(&'static str);

impl Package {
    /// `ntwk:theater`, where every interface is defined.
    pub const CANONICAL: Self = Self("ntwk:theater");
    /// `theater:simple`, the name of the same interfaces from June 2025 on.
    /// Its `runtime` interface also carries `shutdown`.
    pub const SIMPLE: Self = Self("theater:simple");
    /// Every name, the canonical one first.
    pub const ALL: [Self; 2] = [Self::CANONICAL, Self::SIMPLE];

    /// `ntwk:theater`, say.
    pub fn name(self) -> &'static str {
        self.0
    }

    /// `name` (a canonical interface, `ntwk:theater/store`, or
    /// `interface.function`) in this package; any other name unchanged.
    pub fn name_of(self, name: &str) -> Cow<'_, str> {
        match name.strip_prefix(Self::CANONICAL.0) {
            Some(rest) if rest.starts_with('/') && self != Self::CANONICAL => {
                Cow::Owned(format!("{}{rest}", self.0))
            }
            _ => Cow::Borrowed(name),
        }
    }

    /// The Theater package `name` belongs to, if any.
    pub fn of(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|package| {
            name.strip_prefix(package.0)
                .is_some_and(|rest| rest.starts_with('/'))
        })
    }
}

/// The canonical form of `name` (an interface or `interface.function`):
/// `theater:simple/store` is `ntwk:theater/store`; other names unchanged.
pub fn canonical(name: &str) -> Cow<'_, str> {
    match Package::of(name) {
        Some(package) if package != Package::CANONICAL => Cow::Owned(format!(
            "{}{}",
            Package::CANONICAL.0,
            &name[package.0.len()..]
        )),
        _ => Cow::Borrowed(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_move_between_packages() {
        let store = "ntwk:theater/store.get";
        assert_eq!(Package::SIMPLE.name_of(store), "theater:simple/store.get");
        assert_eq!(Package::CANONICAL.name_of(store), store);
        assert_eq!(Package::SIMPLE.name_of("acme:x/y"), "acme:x/y");
        assert_eq!(
            Package::SIMPLE.name_of("ntwk:theaterx/y"),
            "ntwk:theaterx/y"
        );
        assert_eq!(
            canonical("theater:simple/actor.init"),
            "ntwk:theater/actor.init"
        );
        assert_eq!(canonical("ntwk:theater/actor"), "ntwk:theater/actor");
        assert_eq!(canonical("wasi:cli/stdout"), "wasi:cli/stdout");
        assert_eq!(Package::of("theater:simple/runtime"), Some(Package::SIMPLE));
        assert_eq!(Package::of("theater:simplex/runtime"), None);
    }
}
