//! Per-actor state of host capabilities, one value per type.

use std::any::{Any, TypeId};
use std::collections::HashMap;

type TypeMap = HashMap<TypeId, Box<dyn Any + Send>>;

/// Two maps from a type to one value of it. Each handler keeps its
/// per-actor state here under types of its own, so no capability needs to
/// know the others:
/// - *settings* (parsed config) live as long as the actor;
/// - *resources* (servers, connections, open handles) belong to one
///   instance: they are dropped when the instance is replaced after a
///   failure and when the actor ends, so their `Drop` is their cleanup.
#[derive(Default)]
pub struct Extensions {
    settings: TypeMap,
    resources: TypeMap,
}

impl Extensions {
    pub fn insert<T: Any + Send>(&mut self, value: T) {
        self.settings.insert(TypeId::of::<T>(), Box::new(value));
    }

    pub fn get<T: Any + Send>(&self) -> Option<&T> {
        self.settings.get(&TypeId::of::<T>())?.downcast_ref()
    }

    pub fn get_mut<T: Any + Send>(&mut self) -> Option<&mut T> {
        self.settings.get_mut(&TypeId::of::<T>())?.downcast_mut()
    }

    /// Takes the setting of type `T` out, if there is one.
    pub fn take<T: Any + Send>(&mut self) -> Option<T> {
        let value = self.settings.remove(&TypeId::of::<T>())?;
        Some(*value.downcast().expect("stored under its own type id"))
    }

    /// The resource of type `T`, created with `Default` on first use.
    pub fn resource<T: Any + Send + Default>(&mut self) -> &mut T {
        self.resources
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Box::new(T::default()))
            .downcast_mut()
            .expect("stored under its own type id")
    }

    /// Drops every resource (a new instance starts with none).
    pub(crate) fn release_resources(&mut self) {
        self.resources.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::Extensions;

    #[derive(Default, Debug, PartialEq)]
    struct Timeout(u64);

    #[test]
    fn settings_stay_and_resources_go() {
        let mut ext = Extensions::default();
        assert!(ext.get::<Timeout>().is_none());
        ext.insert(Timeout(5));
        ext.get_mut::<Timeout>().unwrap().0 += 1;
        ext.resource::<Vec<u8>>().push(1);
        assert_eq!(ext.resource::<Vec<u8>>(), &vec![1]);
        ext.release_resources();
        assert_eq!(ext.get::<Timeout>(), Some(&Timeout(6)));
        assert!(ext.resource::<Vec<u8>>().is_empty());
    }
}
