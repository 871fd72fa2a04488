//! The pictures' shared geometry: both PNGs have the same width and the same left and right
//! plot margins, so a step is at the same x pixel in both, and the page's cursor maps audio
//! time to x with the same numbers.

/// Width of both pictures, pixels.
pub(crate) const WIDTH: u32 = 1200;
/// Space left of the plot area (the y labels), pixels.
pub(crate) const LEFT: u32 = 84;
/// Space right of the plot area, pixels.
pub(crate) const RIGHT: u32 = 24;
/// Height of the norms picture, pixels.
pub(crate) const NORMS_HEIGHT: u32 = 640;
/// Height of the spectrogram picture, pixels.
pub(crate) const SPECTROGRAM_HEIGHT: u32 = 340;

/// Maps audio positions (audio time in steps, `0..=span`) to x pixels of the plot area
/// `x0..x1` (pixel `x1` is just past the area).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct XMap {
    /// First pixel column of the plot area.
    pub x0: i32,
    /// One past the last pixel column of the plot area.
    pub x1: i32,
    /// Audio length in steps (the whole WAV, ring-out tail included).
    pub span: f64,
}

impl XMap {
    /// The geometry of [`WIDTH`], [`LEFT`], [`RIGHT`] for an audio `span` in steps.
    pub(crate) fn new(span: f64) -> Self {
        XMap {
            x0: LEFT as i32,
            x1: (WIDTH - RIGHT) as i32,
            span: if span > 0.0 { span } else { 1.0 },
        }
    }

    /// Pixel columns of the plot area.
    pub(crate) fn columns(&self) -> usize {
        (self.x1 - self.x0) as usize
    }

    #[cfg(test)]
    /// The x pixel (fractional) of a position.
    pub(crate) fn x(&self, pos: f64) -> f64 {
        self.x0 as f64 + pos / self.span * (self.x1 - self.x0) as f64
    }

    #[cfg(test)]
    /// The position at an x pixel (fractional); inverse of [`x`](Self::x).
    pub(crate) fn pos(&self, x: f64) -> f64 {
        (x - self.x0 as f64) / (self.x1 - self.x0) as f64 * self.span
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_map_to_the_plot_area_and_back() {
        let m = XMap::new(100.0);
        assert_eq!(m.x(0.0), LEFT as f64);
        assert_eq!(m.x(100.0), (WIDTH - RIGHT) as f64);
        assert_eq!(m.x(50.0), (LEFT + WIDTH - RIGHT) as f64 / 2.0);
        for p in [0.0, 1.5, 33.3, 99.0] {
            assert!((m.pos(m.x(p)) - p).abs() < 1e-9);
        }
        assert_eq!(m.columns(), (WIDTH - LEFT - RIGHT) as usize);
        assert_eq!(
            XMap::new(0.0).span,
            1.0,
            "an empty span does not divide by zero"
        );
    }
}
