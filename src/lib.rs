//! sonograd: hear neural-network training.
//!
//! Data flows one way: a [`source`] (the built-in trainer, the `sonograd-trainer` crate, with
//! the `train` feature; a [`source::replay`] of a recording; a [`source::listen`]er for other trainers)
//! emits [`event::Event`]s into the [`pipeline`], which diagnoses them ([`diagnose`]),
//! summarises, records and prints them, and routes them: a [`mapping`] file describes how the
//! [`route`] layer turns events into [`message`]s for each [`output`] (MIDI, OSC, scsynth,
//! files, and the built-in [`synth`] live or rendered offline).
//!
//! The items a program embedding sonograd needs are re-exported here: [`Event`],
//! [`Mapping`] ([`check_mapping`], [`parse_mapping`]), [`Pipeline`] and its [`Report`],
//! [`Router`], [`Message`] and the [`Output`] trait. Modules whose items only the crate's
//! own commands use are `pub(crate)`.

#![warn(missing_docs, unreachable_pub)]

pub mod control;
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

// What a user of the library needs most, at the top: events in, a mapping, the pipeline
// that routes them, and the output trait to play them on.
pub use event::{Event, Payload};
pub use mapping::schema::Mapping;
pub use mapping::{check as check_mapping, parse_str as parse_mapping};
pub use message::Message;
pub use output::Output;
pub use pipeline::{Pipeline, Report};
pub use route::Router;
