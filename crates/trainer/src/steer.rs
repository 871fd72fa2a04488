//! Steering a run while it trains: what a person at the controls asks of the trainer (see
//! `docs/controls.md`), applied between two steps.

use std::sync::Arc;
use std::time::Duration;

/// What to change.
#[derive(Clone, Debug, PartialEq)]
pub enum Steer {
    /// Set the learning rate (the scale goes back to 1).
    Lr(f64),
    /// Scale the run's own learning rate.
    LrScale(f64),
    /// Set momentum (Adam: beta1).
    Momentum(f64),
    /// Set weight decay.
    WeightDecay(f64),
    /// Pause (true) or resume (false).
    Pause(bool),
    /// End the run cleanly.
    Stop,
    /// Save the weights to this file (`{step}` is filled in).
    Checkpoint(String),
    /// Nothing for the trainer (a mark, a sound control): only the event is written.
    Note,
}

/// One command, with what the `control` event says about it.
#[derive(Clone, Debug, PartialEq)]
pub struct SteerCommand {
    /// What to change.
    pub steer: Steer,
    /// The control's name.
    pub control: Arc<str>,
    /// Where it came from.
    pub source: Arc<str>,
    /// The target, as the event names it.
    pub target: Arc<str>,
    /// The value.
    pub value: f64,
}

/// Where commands come from.
pub trait Steering {
    /// The next waiting command; with `wait`, waits that long for one (while paused).
    fn next(&mut self, wait: Option<Duration>) -> Option<SteerCommand>;
    /// A command could not be carried out (a checkpoint that cannot be written).
    fn failed(&mut self, what: String) {
        eprintln!("warning: {what}");
    }
}
