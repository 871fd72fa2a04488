//! Outputs: where routed [`Message`]s become MIDI, OSC, scores and files.
//!
//! Every output implements [`Output`]. The dispatcher hands each message to the output of
//! `msg.output`, calls [`Output::tick`] after each batch (and when idle), calls
//! [`Output::end_routes`] with the ids [`crate::route::Router::reload`] returns, and
//! [`Output::close`] at the end of the run (dropping an output closes it too). Outputs
//! never fail on a send: a peer that is down is reported once and retried; only opening one
//! can fail.
//!
//! | module | output |
//! | --- | --- |
//! | [`osc`] | OSC client over UDP or TCP (SLIP), plain messages or time-tagged bundles |
//! | [`scsynth`] | built-in synth voices and MIDI notes played on scsynth (`/s_new`, `/n_set`) |
//! | [`osc_score`] | an scsynth NRT score (`scsynth -N`) |
//! | [`midi`] | a MIDI port through midir, with a timed sender thread |
//! | [`midi_file`] | a Standard MIDI File |
//! | [`wav`] | the built-in synth rendered offline to a WAV file, on the playback clock |

pub mod midi;
pub mod midi_file;
pub mod midi_sched;
pub mod midi_wire;
pub mod osc;
pub mod osc_packet;
pub mod osc_score;
pub mod scsynth;
pub(crate) mod udp_batch;
pub(crate) mod warn;
pub mod wav;

use std::io;

use crate::mapping::schema::{Mapping, RouteId};
use crate::message::Message;
use crate::synth::live::LiveReport;

/// Whether an output can go on serving a new mapping ([`Output::reload`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reloaded {
    /// It plays the new mapping as it is.
    Kept,
    /// Its connection or layout changed: close it and open the new mapping's.
    Reopen,
}

/// What an output did over the run, handed to the run's report once it is closed.
#[derive(Clone, Debug)]
pub enum OutputReport {
    /// The built-in synth on an audio device (one per device session).
    Synth(LiveReport),
    /// A MIDI port: what its sender thread sent and dropped.
    Midi {
        /// The port's name.
        port: String,
        /// Its sender thread's figures.
        report: midi_sched::SchedReport,
    },
    /// The built-in synth rendered offline to a WAV.
    Rendered(crate::synth::render::RenderReport),
    /// An output that lost data (a file that could not be written).
    Failed(String),
}

/// Something routed messages are played on.
pub trait Output: Send {
    /// Plays one message (`mapping` is the mapping that routed it). Never blocks for long and
    /// never fails: problems are counted and reported once.
    fn send(&mut self, msg: &Message, mapping: &Mapping);

    /// The playback clock reached `now` (seconds): called before the messages routed at that
    /// time. Outputs that make their own timeline (an offline render) move it on; the others
    /// keep the default.
    fn advance(&mut self, _now: f64) {}

    /// The master volume (0..1, a `volume` control) changed. An output with a gain of its own
    /// (the built-in synth) applies it and returns true; the others return false and are
    /// sent their synth levels scaled instead.
    fn set_volume(&mut self, _gain: f64) -> bool {
        false
    }

    /// Pushes out whatever is buffered (called after each batch of messages and when idle).
    fn tick(&mut self) {}

    /// Called when the event queue is momentarily empty. An error (the reader of the monitor's
    /// lines went away) ends the routing of the run; outputs that cannot fail keep the default.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Ends the notes that the given routes (ids of the mapping they were routed with) left
    /// sounding: call it with the ids [`crate::route::Router::reload`] returns, before
    /// sending messages routed with the new mapping.
    fn end_routes(&mut self, _routes: &[RouteId]) {}

    /// The mapping changed from `old` to `new`, and the routes `changed` (ids of `old`) with
    /// it: ends their notes and says whether this output can serve `new` as it is.
    fn reload(&mut self, changed: &[RouteId], _old: &Mapping, _new: &Mapping) -> Reloaded {
        self.end_routes(changed);
        Reloaded::Kept
    }

    /// Ends every sounding note, flushes and releases the output. Further sends are ignored.
    /// Called again (or on drop) it does nothing.
    fn close(&mut self);

    /// What the output did, once it is closed (taken once; `None` when there is nothing to say).
    fn report(&mut self) -> Option<OutputReport> {
        None
    }
}
