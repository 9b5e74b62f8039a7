//! Per-actor state of host capabilities, one value per type.

use std::any::{Any, TypeId};
use std::collections::HashMap;

/// A map from a type to one value of it. Each handler keeps its per-actor
/// state (parsed config, open resources) here under a type of its own, so
/// no capability needs to know the others.
#[derive(Default)]
pub struct Extensions {
    values: HashMap<TypeId, Box<dyn Any + Send>>,
}

impl Extensions {
    pub fn insert<T: Any + Send>(&mut self, value: T) {
        self.values.insert(TypeId::of::<T>(), Box::new(value));
    }

    pub fn get<T: Any + Send>(&self) -> Option<&T> {
        self.values.get(&TypeId::of::<T>())?.downcast_ref()
    }

    pub fn get_mut<T: Any + Send>(&mut self) -> Option<&mut T> {
        self.values.get_mut(&TypeId::of::<T>())?.downcast_mut()
    }

    /// The value of type `T`, created with `Default` on first use.
    pub fn get_or_default<T: Any + Send + Default>(&mut self) -> &mut T {
        self.values
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Box::new(T::default()))
            .downcast_mut()
            .expect("stored under its own type id")
    }
}

#[cfg(test)]
mod tests {
    use super::Extensions;

    #[derive(Default, Debug, PartialEq)]
    struct Timeout(u64);

    #[test]
    fn one_value_per_type() {
        let mut ext = Extensions::default();
        assert!(ext.get::<Timeout>().is_none());
        ext.insert(Timeout(5));
        ext.get_mut::<Timeout>().unwrap().0 += 1;
        assert_eq!(ext.get::<Timeout>(), Some(&Timeout(6)));
        ext.get_or_default::<Vec<u8>>().push(1);
        assert_eq!(ext.get::<Vec<u8>>(), Some(&vec![1]));
    }
}
