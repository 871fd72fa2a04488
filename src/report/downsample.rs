//! A series downsampled on the fly to a fixed number of bins: bounded memory for any length.

/// Minimum, maximum and mean of the values that fell in one bin.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bin {
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Sum of the values.
    pub sum: f64,
    /// How many values.
    pub count: u64,
}

impl Bin {
    fn of(v: f64) -> Self {
        Bin {
            min: v,
            max: v,
            sum: v,
            count: 1,
        }
    }

    fn merge(self, o: Bin) -> Bin {
        Bin {
            min: self.min.min(o.min),
            max: self.max.max(o.max),
            sum: self.sum + o.sum,
            count: self.count + o.count,
        }
    }

    /// Mean of the values.
    pub fn mean(&self) -> f64 {
        self.sum / self.count as f64
    }
}

/// Values at integer positions, kept as at most `capacity` bins of `width` positions each; the
/// width doubles (neighbouring bins merge) whenever a position falls past the last bin.
#[derive(Clone, Debug)]
pub struct Downsampled {
    width: u64,
    capacity: usize,
    bins: Vec<Option<Bin>>,
}

impl Downsampled {
    /// An empty series of at most `capacity` bins (at least 2).
    pub fn new(capacity: usize) -> Self {
        Downsampled {
            width: 1,
            capacity: capacity.max(2),
            bins: Vec::new(),
        }
    }

    /// Adds a value at `pos`; non-finite values are ignored (they are markers, not points).
    pub fn push(&mut self, pos: u64, value: f64) {
        if !value.is_finite() {
            return;
        }
        while pos / self.width >= self.capacity as u64 {
            self.halve();
        }
        let i = (pos / self.width) as usize;
        if self.bins.len() <= i {
            self.bins.resize(i + 1, None);
        }
        let b = Bin::of(value);
        self.bins[i] = Some(match self.bins[i] {
            Some(old) => old.merge(b),
            None => b,
        });
    }

    fn halve(&mut self) {
        let merged: Vec<Option<Bin>> = self
            .bins
            .chunks(2)
            .map(|pair| match pair {
                [Some(a), Some(b)] => Some(a.merge(*b)),
                [Some(a), None] | [None, Some(a)] | [Some(a)] => Some(*a),
                _ => None,
            })
            .collect();
        self.bins = merged;
        self.width *= 2;
    }

    /// Positions per bin.
    pub fn width(&self) -> u64 {
        self.width
    }

    /// Bins with values: (first position of the bin, the bin).
    pub fn bins(&self) -> impl Iterator<Item = (u64, Bin)> + '_ {
        self.bins
            .iter()
            .enumerate()
            .filter_map(|(i, b)| b.map(|b| (i as u64 * self.width, b)))
    }

    /// Whether no value was pushed.
    pub fn is_empty(&self) -> bool {
        self.bins.iter().all(Option::is_none)
    }

    /// Smallest and largest value, if any; `positive` keeps only values > 0 (for log axes).
    pub fn range(&self, positive: bool) -> Option<(f64, f64)> {
        let mut out: Option<(f64, f64)> = None;
        for (_, b) in self.bins() {
            let lo = if positive && b.min <= 0.0 {
                if b.max > 0.0 {
                    // The bin mixes zeros and positives: its positive floor is unknown, use
                    // the mean if positive or the max.
                    let m = b.mean();
                    if m > 0.0 {
                        m.min(b.max)
                    } else {
                        b.max
                    }
                } else {
                    continue;
                }
            } else {
                b.min
            };
            out = Some(match out {
                Some((a, z)) => (a.min(lo), z.max(b.max)),
                None => (lo, b.max),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_series_keeps_every_value() {
        let mut d = Downsampled::new(8);
        for p in 0..5 {
            d.push(p, p as f64 * 2.0);
        }
        let bins: Vec<_> = d.bins().collect();
        assert_eq!(d.width(), 1);
        assert_eq!(bins.len(), 5);
        assert_eq!(bins[3], (3, Bin::of(6.0)));
    }

    #[test]
    fn long_series_merges_into_bounded_bins_keeping_extremes() {
        let mut d = Downsampled::new(100);
        for p in 0..100_000u64 {
            let v = if p == 77_777 { 1e9 } else { (p % 10) as f64 };
            d.push(p, v);
        }
        assert!(d.bins().count() <= 100);
        assert_eq!(d.width(), 1024);
        let total: u64 = d.bins().map(|(_, b)| b.count).sum();
        assert_eq!(total, 100_000, "every value counted once");
        let (lo, hi) = d.range(false).unwrap();
        assert_eq!((lo, hi), (0.0, 1e9), "the spike survives downsampling");
        let spike = d.bins().find(|(_, b)| b.max == 1e9).unwrap();
        assert!(spike.0 <= 77_777 && 77_777 < spike.0 + d.width());
    }

    #[test]
    fn non_finite_values_and_gaps_are_skipped() {
        let mut d = Downsampled::new(8);
        d.push(0, f64::NAN);
        d.push(1, f64::INFINITY);
        d.push(6, 3.0);
        assert_eq!(d.bins().collect::<Vec<_>>(), vec![(6, Bin::of(3.0))]);
        assert!(Downsampled::new(4).is_empty());
    }

    #[test]
    fn positive_range_ignores_zeros_for_log_axes() {
        let mut d = Downsampled::new(8);
        d.push(0, 0.0);
        d.push(1, 0.5);
        d.push(2, 4.0);
        assert_eq!(d.range(true), Some((0.5, 4.0)));
        assert_eq!(d.range(false), Some((0.0, 4.0)));
    }
}
