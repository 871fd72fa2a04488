//! The mapping's own outputs that connect to something (a MIDI port, an OSC peer, scsynth
//! playing the synth voices), opened by name from the output settings.

use std::io;

use crate::mapping::schema::{Mapping, MidiPort, OscProtocol, OutputKind, RouteId};
use crate::message::Message;
use crate::output::midi::MidiOut;
use crate::output::midi_sched::SchedConfig;
use crate::output::osc::OscOutput;
use crate::output::scsynth::ScsynthOutput;
use crate::output::{Output, OutputReport, Reloaded};

use super::dispatch::OutputSettings;

/// A connection opened for one output of the mapping, known by the output's name.
pub(crate) struct Port {
    /// The mapping output it plays.
    pub(crate) name: std::sync::Arc<str>,
    kind: OutputKind,
    inner: Box<dyn Output>,
}

/// Whether an opened output of kind `a` serves `b` as it is. Patches only matter to the
/// built-in synth, not to scsynth playing the voices.
pub(crate) fn same_connection(a: &OutputKind, b: &OutputKind) -> bool {
    match (a, b) {
        (OutputKind::Synth { voices: x, .. }, OutputKind::Synth { voices: y, .. }) => x == y,
        _ => a == b,
    }
}

impl Port {
    /// Opens the connection for the mapping output `name` of `kind`, if that kind connects
    /// to anything with these settings (`Ok(None)`: a monitor, or a synth output that the
    /// built-in synth plays).
    pub(crate) fn open(
        kind: &OutputKind,
        name: &std::sync::Arc<str>,
        settings: &OutputSettings,
    ) -> io::Result<Option<Port>> {
        if settings.files_only {
            return Ok(None);
        }
        let fail = |e: &dyn std::fmt::Display| io::Error::other(format!("output `{name}`: {e}"));
        let inner: Box<dyn Output> = match kind {
            OutputKind::Midi { .. } => {
                let mut config = SchedConfig::default();
                if let Some(rate) = settings.midi_rate {
                    config.max_per_sec = rate;
                }
                let out = match &settings.midi_virtual {
                    Some(v) => MidiOut::open_port(&MidiPort::Virtual(v.clone()), config),
                    None => MidiOut::open(kind, name, config),
                };
                Box::new(out.map_err(|e| fail(&e))?)
            }
            OutputKind::Osc { .. } => Box::new(OscOutput::open(kind, name).map_err(|e| fail(&e))?),
            OutputKind::Synth { .. } => match &settings.scsynth {
                Some((host, port)) => Box::new(
                    ScsynthOutput::open(host, *port, OscProtocol::Udp, 0).map_err(|e| fail(&e))?,
                ),
                None => return Ok(None),
            },
            OutputKind::Monitor => return Ok(None),
        };
        Ok(Some(Port {
            name: name.clone(),
            kind: kind.clone(),
            inner,
        }))
    }

    /// Whether a port of `kind` was named on the command line (`--midi-virtual`,
    /// `--scsynth`): failing to open it is then an error, not a warning.
    pub(crate) fn named_by_flag(kind: &OutputKind, settings: &OutputSettings) -> bool {
        match kind {
            OutputKind::Midi { .. } => settings.midi_virtual.is_some(),
            OutputKind::Synth { .. } => settings.scsynth.is_some(),
            _ => false,
        }
    }
}

impl Output for Port {
    fn send(&mut self, msg: &Message, mapping: &Mapping) {
        self.inner.send(msg, mapping);
    }

    fn tick(&mut self) {
        self.inner.tick();
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }

    fn end_routes(&mut self, routes: &[RouteId]) {
        self.inner.end_routes(routes);
    }

    /// Kept when the new mapping has an output of the same name that connects the same way.
    fn reload(&mut self, changed: &[RouteId], old: &Mapping, new: &Mapping) -> Reloaded {
        let same = new
            .outputs
            .iter()
            .any(|o| o.name == self.name && same_connection(&self.kind, &o.kind));
        if same {
            self.inner.reload(changed, old, new)
        } else {
            Reloaded::Reopen
        }
    }

    fn close(&mut self) {
        self.inner.close();
    }

    fn report(&mut self) -> Option<OutputReport> {
        self.inner.report()
    }
}
