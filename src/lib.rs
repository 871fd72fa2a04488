//! sonograd: hear neural-network training.
//!
//! Data flows one way: a source (the built-in [`source::train`] trainer, a [`source::replay`]
//! of a recording) emits [`event::Event`]s; a bounded [`queue`] carries them to the consumer
//! thread ([`consume`]), which records ([`record`]), prints ([`print`]), shows progress
//! ([`progress`]) and summarises ([`summary`]) them.

pub mod consume;
pub mod event;
pub mod print;
pub mod progress;
pub mod queue;
pub mod record;
pub mod source;
pub mod summary;
