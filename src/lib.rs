//! sonograd: hear neural-network training.
//!
//! Data flows one way: a source (the built-in trainer, `source::train`, with the `train`
//! feature; a [`source::replay`] of a recording) emits [`event::Event`]s; a bounded [`queue`] carries them to the consumer
//! thread ([`consume`]), which diagnoses ([`diagnose`]), records ([`record`]), prints
//! ([`print`]), shows progress ([`progress`]), summarises ([`summary`]) and routes them: a
//! [`mapping`] file describes how the [`route`] layer turns events into output [`message`]s,
//! which [`monitor`] shows as text.

#![warn(missing_docs, unreachable_pub)]

pub mod consume;
pub mod diagnose;
pub mod dispatch;
/// The event model (its own crate, `sonograd-event`, shared with the trainer).
pub use sonograd_event as event;
pub mod mapping;
pub mod message;
pub mod monitor;
pub mod output;
pub mod print;
pub mod progress;
pub mod queue;
pub mod record;
pub mod report;
pub mod route;
pub mod source;
pub mod summary;
pub mod synth;
