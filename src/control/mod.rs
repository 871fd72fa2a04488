//! Controls coming in: MIDI and OSC from a person at a controller, steering the run and the
//! sound (see `docs/controls.md`).
//!
//! [`input`] decodes MIDI (midly) and OSC (rosc) into [`input::Input`]s; [`binding`] turns
//! them into new values of the mapping's `[[control]]`s (mode, curve, range, clamping);
//! [`hub::ControlHub`] runs the inputs and hands every applied change to an
//! [`hub::Apply`] (the trainer, or `listen`'s forwarder to a Python run); [`feedback`] sends
//! every value back to the controllers.

pub mod binding;
pub mod feedback;
pub mod hub;
pub mod input;
pub mod learn;
pub(crate) mod midi_in;

use std::net::SocketAddr;

pub use hub::{Applied, Apply, ControlHub, HubReport};

/// An input the user asked for cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The OSC control port cannot be bound.
    #[error("controls: cannot listen for OSC on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The MIDI input cannot be opened (no MIDI system, or midir failed).
    #[error("controls: {0}")]
    Midi(String),
    /// No MIDI input port matches.
    #[error("controls: no MIDI input port {wanted}; ports: {}", if available.is_empty() { "none".to_string() } else { available.join(", ") })]
    NoMidiPort {
        /// What was asked for.
        wanted: String,
        /// What exists.
        available: Vec<String>,
    },
    /// A thread could not start.
    #[error("controls: cannot start a thread: {0}")]
    Thread(std::io::Error),
}
