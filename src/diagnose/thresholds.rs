//! The detector's thresholds: the `[diagnose]` table of a mapping file, with defaults.

/// When each diagnosis fires. Every field has a default ([`Thresholds::default`]); a mapping
/// file's `[diagnose]` table overrides them (see `docs/mapping.md`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thresholds {
    /// Run the detector at all (`enabled`).
    pub enabled: bool,
    /// Exploding: the total norm grew at least this factor (`exploding_factor`)...
    pub exploding_factor: f64,
    /// ...over this many steps, rising on all of them but at most one (`exploding_steps`).
    pub exploding_steps: u32,
    /// Vanishing: the first layer's gradient norm is below this fraction of the last layer's
    /// (`vanishing_ratio`)...
    pub vanishing_ratio: f64,
    /// ...for this many steps in a row (`vanishing_steps`).
    pub vanishing_steps: u32,
    /// Plateau: the mean loss of the last `plateau_steps` steps...
    pub plateau_steps: u32,
    /// ...differs from the mean of the `plateau_steps` before by less than this fraction
    /// (`plateau_tolerance`).
    pub plateau_tolerance: f64,
    /// Oscillation: over the last `oscillation_steps` steps...
    pub oscillation_steps: u32,
    /// ...at least this fraction of the step-to-step changes reverse the previous one
    /// (`oscillation_flips`)...
    pub oscillation_flips: f64,
    /// ...and a step changes the value by this factor on average (`oscillation_factor`).
    pub oscillation_factor: f64,
    /// Dead layer: the layer's gradient norm is exactly zero this many steps in a row
    /// (`dead_steps`).
    pub dead_steps: u32,
    /// A diagnosis that fired stays quiet until its condition has been clear this many steps
    /// (`rearm_steps`).
    pub rearm_steps: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            enabled: true,
            exploding_factor: 10.0,
            exploding_steps: 5,
            vanishing_ratio: 1e-2,
            vanishing_steps: 20,
            plateau_steps: 50,
            plateau_tolerance: 0.01,
            oscillation_steps: 20,
            oscillation_flips: 0.8,
            oscillation_factor: 2.0,
            dead_steps: 20,
            rearm_steps: 50,
        }
    }
}

/// Largest window any threshold may ask for (bounds the detector's memory per stream).
pub const MAX_WINDOW: u32 = 10_000;
