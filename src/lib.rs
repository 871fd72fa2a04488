//! sonograd: hear neural-network training.
//!
//! Data flows one way: a [`source`] (the built-in trainer, `source::train`, with the `train`
//! feature; a [`source::replay`] of a recording; a [`source::listen`]er for other trainers)
//! emits [`event::Event`]s into the [`pipeline`], which diagnoses them ([`diagnose`]),
//! summarises, records and prints them, and routes them: a [`mapping`] file describes how the
//! [`route`] layer turns events into [`message`]s for each [`output`] (MIDI, OSC, scsynth,
//! files, and the built-in [`synth`] live or rendered offline).

#![warn(missing_docs, unreachable_pub)]

pub mod diagnose;
/// The event model (its own crate, `sonograd-event`, shared with the trainer).
pub use sonograd_event as event;
pub mod mapping;
pub mod message;
pub mod output;
pub mod pipeline;
pub mod report;
pub mod route;
pub mod source;
pub mod synth;
