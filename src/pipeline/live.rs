//! The built-in synth playing live on an audio device, as an [`Output`]: messages go to the
//! audio thread without blocking; a reload that changes the voice layout or a patch asks to
//! be reopened.

use std::time::Duration;

use crate::mapping::schema::{Mapping, RouteId};
use crate::message::Message;
use crate::output::{Output, OutputReport, Reloaded};
use crate::synth::control::VoiceMap;
use crate::synth::live::{LiveError, LiveOptions, LiveReport, SynthOutput};

/// How long the live synth keeps playing after the last message, so the last notes ring out.
const TAIL: Duration = Duration::from_millis(300);

/// The built-in synth on an audio device, for the `synth` outputs of a mapping.
pub struct LiveSynth {
    synth: SynthOutput,
    closed: bool,
    report: Option<LiveReport>,
}

impl LiveSynth {
    /// Opens the device for `mapping`'s synth outputs. `Ok(None)`: nothing to play (no synth
    /// output in the mapping) or no audio device at all (a warning; the run goes on without
    /// sound). A device asked for by name that is not there, or bad options, are errors.
    pub fn open(mapping: &Mapping, options: &LiveOptions) -> Result<Option<Self>, LiveError> {
        if VoiceMap::from_mapping(mapping).total == 0 {
            return Ok(None);
        }
        match SynthOutput::open(mapping, options) {
            Ok(synth) => Ok(Some(LiveSynth {
                synth,
                closed: false,
                report: None,
            })),
            Err(e @ (LiveError::NoDevice { .. } | LiveError::NoSynth)) => {
                eprintln!("warning: {e}; going on without sound");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The device, sample rate and buffer sizes (requested and granted).
    pub fn info(&self) -> &LiveReport {
        self.synth.info()
    }
}

/// Whether the live synth playing `old` must be reopened to play `new`: the voice layout or
/// a voice's patch changed.
pub(crate) fn synth_changed(old: &Mapping, new: &Mapping) -> bool {
    VoiceMap::from_mapping(old) != VoiceMap::from_mapping(new)
        || old.synth_patches() != new.synth_patches()
}

impl Output for LiveSynth {
    fn send(&mut self, msg: &Message, _mapping: &Mapping) {
        self.synth.send(msg);
    }

    fn set_volume(&mut self, gain: f64) -> bool {
        self.synth.set_master(gain as f32);
        true
    }

    fn reload(&mut self, _changed: &[RouteId], old: &Mapping, new: &Mapping) -> Reloaded {
        if synth_changed(old, new) {
            Reloaded::Reopen
        } else {
            Reloaded::Kept
        }
    }

    fn close(&mut self) {
        if std::mem::replace(&mut self.closed, true) {
            return;
        }
        if self.synth.info().sent > 0 {
            // Let the last notes ring out.
            std::thread::sleep(TAIL);
        }
        self.report = Some(self.synth.stop());
    }

    fn report(&mut self) -> Option<OutputReport> {
        self.report.take().map(OutputReport::Synth)
    }
}
