//! Layer indices: from the event when it has one, else by first appearance of the name.

use std::collections::HashMap;
use std::sync::Arc;

use crate::event::Layer;

/// Gives every layer a stable index. Allocates only when it first sees a name.
#[derive(Clone, Debug, Default)]
pub(crate) struct LayerInterner {
    by_name: HashMap<Arc<str>, u32>,
    count: u32,
}

impl LayerInterner {
    /// An empty interner.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The layer's index: its own `index` if it has one, else the index its name got when
    /// first seen (the next free one).
    pub(crate) fn index(&mut self, layer: &Layer) -> u32 {
        if let Some(i) = layer.index {
            self.count = self.count.max(i.saturating_add(1));
            return i;
        }
        if let Some(&i) = self.by_name.get(&layer.name) {
            return i;
        }
        let i = self.count;
        self.by_name.insert(layer.name.clone(), i);
        self.count += 1;
        i
    }

    /// Registers the layers of a run's metadata in order (names already known keep theirs).
    pub(crate) fn declare(&mut self, names: &[String]) {
        for (i, name) in names.iter().enumerate() {
            if !self.by_name.contains_key(name.as_str()) {
                let i = i as u32;
                self.by_name.insert(Arc::from(name.as_str()), i);
                self.count = self.count.max(i + 1);
            }
        }
    }

    /// Number of layer indices in use (one more than the largest seen).
    pub(crate) fn count(&self) -> u32 {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_appearance_and_explicit_indices() {
        let mut l = LayerInterner::new();
        let named = |n: &str| Layer {
            name: n.into(),
            index: None,
        };
        assert_eq!(l.index(&named("a")), 0);
        assert_eq!(l.index(&named("b")), 1);
        assert_eq!(l.index(&named("a")), 0);
        assert_eq!(l.index(&Layer::new("z", 5)), 5);
        assert_eq!(l.index(&named("c")), 6);
        assert_eq!(l.count(), 7);
        let mut l = LayerInterner::new();
        l.declare(&["fc1".into(), "fc2".into()]);
        assert_eq!(l.index(&named("fc2")), 1);
        assert_eq!(l.index(&named("fc3")), 2);
    }
}
