//! Rate limiting: values that arrive inside a route's window are merged until it passes.

use crate::mapping::schema::Coalesce;
use crate::message::LayerRef;

/// Values merged while a rate window is closed.
#[derive(Clone, Debug)]
pub(crate) struct Pending {
    /// Merged level.
    pub level: f64,
    /// Merged raw value.
    pub raw: f64,
    /// Values merged.
    pub count: u32,
    /// Step of the latest.
    pub step: u64,
    /// Epoch of the latest.
    pub epoch: u32,
    /// Layer of the latest.
    pub layer: Option<LayerRef>,
}

impl Pending {
    /// Merges one more value in.
    pub(crate) fn merge(
        &mut self,
        how: Coalesce,
        level: f64,
        raw: f64,
        step: u64,
        epoch: u32,
        layer: Option<LayerRef>,
    ) {
        match how {
            Coalesce::Last => {
                self.level = level;
                self.raw = raw;
            }
            Coalesce::Max => {
                if raw > self.raw {
                    self.level = level;
                    self.raw = raw;
                }
            }
            Coalesce::Mean => {
                let n = self.count as f64;
                self.level = (self.level * n + level) / (n + 1.0);
                self.raw = (self.raw * n + raw) / (n + 1.0);
            }
        }
        self.count += 1;
        self.step = step;
        self.epoch = epoch;
        self.layer = layer;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(level: f64) -> Pending {
        Pending {
            level,
            raw: level * 10.0,
            count: 1,
            step: 0,
            epoch: 0,
            layer: None,
        }
    }

    #[test]
    fn coalesce_modes() {
        let mut p = start(0.2);
        p.merge(Coalesce::Last, 0.1, 1.0, 3, 0, None);
        assert_eq!((p.level, p.raw, p.step), (0.1, 1.0, 3));
        let mut p = start(0.2);
        p.merge(Coalesce::Max, 0.1, 1.0, 3, 0, None);
        assert_eq!((p.level, p.raw, p.count), (0.2, 2.0, 2));
        p.merge(Coalesce::Max, 0.9, 9.0, 4, 0, None);
        assert_eq!((p.level, p.raw), (0.9, 9.0));
        let mut p = start(0.2);
        p.merge(Coalesce::Mean, 0.4, 4.0, 3, 0, None);
        assert!((p.level - 0.3).abs() < 1e-12 && (p.raw - 3.0).abs() < 1e-12);
    }
}
