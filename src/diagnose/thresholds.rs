//! The detector's thresholds: the `[diagnose]` table of a mapping file, with defaults.
//!
//! Every rule compares a step against the run's own recent history (running medians and
//! median absolute deviations over the last `history_steps` steps), so the defaults hold
//! for runs whose norms and losses live on very different scales.

/// When each diagnosis fires. Every field has a default ([`Thresholds::default`]); a mapping
/// file's `[diagnose]` table overrides them (see `docs/mapping.md`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thresholds {
    /// Run the detector at all (`enabled`).
    pub enabled: bool,
    /// Steps of the run's own history the robust statistics (running median and spread of
    /// the total norm and the loss) look back over (`history_steps`).
    pub history_steps: u32,
    /// Exploding: the total norm is at least this factor above its running median
    /// (`exploding_factor`), far outside its own spread...
    pub exploding_factor: f64,
    /// ...on this many steps in a row, ending at its highest (`exploding_steps`).
    pub exploding_steps: u32,
    /// Vanishing: the first layer's gradient norm is below this fraction of the last layer's
    /// (`vanishing_ratio`)...
    pub vanishing_ratio: f64,
    /// ...for this many steps in a row (`vanishing_steps`).
    pub vanishing_steps: u32,
    /// Plateau: over the last `plateau_steps` steps...
    pub plateau_steps: u32,
    /// ...the median loss of the newest third differs from the oldest third's by less than
    /// this fraction (`plateau_tolerance`)...
    pub plateau_tolerance: f64,
    /// ...while the loss is still above this fraction of the run's starting loss
    /// (`plateau_level`): a run sitting near zero has converged, not stalled.
    pub plateau_level: f64,
    /// Oscillation: over the last `oscillation_steps` steps, the detrended log total norm
    /// (or log loss)...
    pub oscillation_steps: u32,
    /// ...has a lag-1 autocorrelation of at most minus this (`oscillation_correlation`)...
    pub oscillation_correlation: f64,
    /// ...and its period-2 swing changes the value by at least this factor up and down
    /// (`oscillation_factor`).
    pub oscillation_factor: f64,
    /// Dead layer: the layer's gradient norm is exactly zero this many steps in a row
    /// (`dead_steps`).
    pub dead_steps: u32,
    /// Loss spike: the loss (median of the last three steps) lies this many robust standard
    /// deviations above the median of the `history_steps` before (`loss_spike_z`)...
    pub loss_spike_z: f64,
    /// ...and at least this factor above their top 1 % (`loss_spike_factor`).
    pub loss_spike_factor: f64,
    /// Stall: no new step for this many seconds from a run that had been stepping
    /// (`stall_seconds`; live `train` and `listen` only).
    pub stall_seconds: f64,
    /// A diagnosis that fired stays quiet until its condition has been clear this many steps
    /// (`rearm_steps`).
    pub rearm_steps: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            enabled: true,
            history_steps: 200,
            exploding_factor: 10.0,
            exploding_steps: 3,
            vanishing_ratio: 1e-2,
            vanishing_steps: 20,
            plateau_steps: 300,
            plateau_tolerance: 0.02,
            plateau_level: 0.9,
            oscillation_steps: 40,
            oscillation_correlation: 0.6,
            oscillation_factor: 1.5,
            dead_steps: 20,
            loss_spike_z: 6.0,
            loss_spike_factor: 2.0,
            stall_seconds: 10.0,
            rearm_steps: 50,
        }
    }
}

/// Largest window any threshold may ask for (bounds the detector's memory per stream).
pub const MAX_WINDOW: u32 = 10_000;
