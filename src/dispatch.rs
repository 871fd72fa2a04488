//! Routing on the consumer thread: events go through the [`Router`] of the current mapping,
//! and each message goes to its output: a MIDI port, an OSC peer, scsynth for `synth`
//! outputs (`--scsynth`) or else the built-in synth playing live on an audio device, and the
//! file sinks (`--midi-file`, `--osc-score`), which take every message. Messages for `monitor` outputs, or every message with `--monitor`, are printed as
//! readable lines. Saving the mapping file swaps in the new mapping (an invalid edit keeps
//! the old one and prints the problems); notes of changed routes are ended first.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::consume::EventConsumer;
use crate::event::Event;
use crate::mapping::schema::{Mapping, OutputKind};
use crate::mapping::watch::{MappingWatcher, Reload};
use crate::message::Message;
use crate::monitor;
use crate::output::midi::MidiOut;
use crate::output::midi_file::{MidiFileConfig, MidiFileWriter};
use crate::output::midi_sched::SchedConfig;
use crate::output::osc::OscOutput;
use crate::output::osc_score::ScoreWriter;
use crate::output::scsynth::ScsynthOutput;
use crate::output::Output;
use crate::route::clock::{Clock, PlaybackClock};
use crate::route::Router;
use crate::synth::control::VoiceMap;
use crate::synth::live::{LiveError, LiveOptions, LiveReport, SynthOutput};

/// How the mapping's outputs are opened, and which file sinks to write.
#[derive(Clone, Debug, Default)]
pub struct OutputSettings {
    /// Play every `midi` output on a new virtual port of this name.
    pub midi_virtual: Option<String>,
    /// Most MIDI messages a second per port (None: the default, safe for DIN MIDI).
    pub midi_rate: Option<u32>,
    /// Play `synth` outputs on this scsynth (host, port) instead of the built-in synth.
    pub scsynth: Option<(String, u16)>,
    /// Write a Standard MIDI File.
    pub midi_file: Option<(PathBuf, MidiFileConfig)>,
    /// Write an scsynth NRT score, with this many seconds per step.
    pub osc_score: Option<(PathBuf, f64)>,
    /// Play `synth` outputs live on an audio device with the built-in synth (None: they are
    /// silent, unless `scsynth` plays them).
    pub live: Option<LiveOptions>,
    /// Where the live synth's reports go when it stops (one per opened device session).
    pub live_reports: LiveReports,
    /// The clock that rate limits, coalescing and the monitor's times run on.
    pub clock: PlaybackClock,
}

/// How long the live synth keeps playing after the last event, so the last notes ring out.
const LIVE_TAIL: std::time::Duration = std::time::Duration::from_millis(300);

/// The live synth's reports, shared with whoever reads them after the run.
pub type LiveReports = Arc<Mutex<Vec<LiveReport>>>;

/// An opened output (`None`: nothing to play on, e.g. the monitor).
type OpenedOutput = Option<Box<dyn Output>>;

/// One opened output per mapping output.
type Opened = Vec<OpenedOutput>;

fn open_output(
    kind: &OutputKind,
    name: &str,
    settings: &OutputSettings,
) -> io::Result<Option<Box<dyn Output>>> {
    let fail = |e: &dyn std::fmt::Display| io::Error::other(format!("output `{name}`: {e}"));
    Ok(match kind {
        OutputKind::Midi { .. } => {
            let mut config = SchedConfig::default();
            if let Some(rate) = settings.midi_rate {
                config.max_per_sec = rate;
            }
            let out = match &settings.midi_virtual {
                Some(v) => MidiOut::open_port(
                    &crate::mapping::schema::MidiPort::Virtual(v.clone()),
                    config,
                ),
                None => MidiOut::open(kind, name, config),
            };
            Some(Box::new(out.map_err(|e| fail(&e))?))
        }
        OutputKind::Osc { .. } => {
            Some(Box::new(OscOutput::open(kind, name).map_err(|e| fail(&e))?))
        }
        OutputKind::Synth { .. } => match &settings.scsynth {
            Some((host, port)) => Some(Box::new(
                ScsynthOutput::open(host, *port, crate::mapping::schema::OscProtocol::Udp, 0)
                    .map_err(|e| fail(&e))?,
            )),
            None => None,
        },
        OutputKind::Monitor => None,
    })
}

/// Whether the live synth playing `old` must be reopened to play `new`: the voice layout or
/// a voice's patch changed.
fn synth_changed(old: &Mapping, new: &Mapping) -> bool {
    VoiceMap::from_mapping(old) != VoiceMap::from_mapping(new)
        || old.synth_patches() != new.synth_patches()
}

/// Whether an opened output of kind `a` serves `b` as it is. Patches only matter to the
/// built-in synth (reopened on its own in `swap_outputs`), not to scsynth playing the voices.
fn same_connection(a: &OutputKind, b: &OutputKind) -> bool {
    match (a, b) {
        (OutputKind::Synth { voices: x, .. }, OutputKind::Synth { voices: y, .. }) => x == y,
        _ => a == b,
    }
}

/// Opens every output of `mapping`. A port the mapping names that cannot open (no ALSA
/// sequencer on a training server, a peer not listening) gets one warning and the run goes on
/// without it, so file outputs and the rest still work; a port named on the command line
/// (`--midi-virtual`, `--scsynth`) is an error.
fn open_all(mapping: &Mapping, settings: &OutputSettings) -> io::Result<Opened> {
    mapping
        .outputs
        .iter()
        .map(|o| {
            let named_by_flag = match &o.kind {
                OutputKind::Midi { .. } => settings.midi_virtual.is_some(),
                OutputKind::Synth { .. } => settings.scsynth.is_some(),
                _ => false,
            };
            match open_output(&o.kind, &o.name, settings) {
                Err(e) if !named_by_flag => {
                    eprintln!("warning: {e}; going on without it");
                    Ok(None)
                }
                other => other,
            }
        })
        .collect()
}

/// Where monitor lines go.
pub type LineSink = Box<dyn Write + Send>;

/// Routes events and hands messages to outputs.
pub struct Dispatcher {
    path: PathBuf,
    mapping: Mapping,
    router: Router,
    watcher: Option<MappingWatcher>,
    out: Vec<Message>,
    monitor_all: bool,
    lines: LineSink,
    line: String,
    clock: Clock,
    routed: u64,
    settings: OutputSettings,
    outputs: Opened,
    files: Vec<Box<dyn Output>>,
    synth: Option<SynthOutput>,
}

impl Dispatcher {
    /// Routes with `mapping` (already validated, from `path`), opening its outputs and the
    /// file sinks `settings` ask for; `monitor_all` prints every message; `watch` reloads the
    /// file when it changes. An output that cannot be opened is an error here, before anything starts.
    pub fn with_outputs(
        path: &Path,
        mapping: Mapping,
        monitor_all: bool,
        watch: bool,
        lines: LineSink,
        settings: OutputSettings,
    ) -> io::Result<Self> {
        let outputs = open_all(&mapping, &settings)?;
        let mut files: Vec<Box<dyn Output>> = Vec::new();
        if let Some((path, config)) = &settings.midi_file {
            files.push(Box::new(MidiFileWriter::new(path, *config)));
        }
        if let Some((path, step_secs)) = &settings.osc_score {
            let score = ScoreWriter::create(path, *step_secs)
                .map_err(|e| io::Error::other(format!("--osc-score {}: {e}", path.display())))?;
            files.push(Box::new(score));
        }
        let synth = open_live(&mapping, &settings)?;
        let watcher = if watch {
            Some(MappingWatcher::new(path).map_err(|e| io::Error::other(e.to_string()))?)
        } else {
            None
        };
        Ok(Dispatcher {
            path: path.to_path_buf(),
            router: Router::new(&mapping),
            mapping,
            watcher,
            out: Vec::with_capacity(256),
            monitor_all,
            lines,
            line: String::with_capacity(160),
            clock: Clock::new(settings.clock),
            routed: 0,
            settings,
            outputs,
            files,
            synth,
        })
    }

    /// The live synth's device, sample rate and buffer sizes, when it plays.
    pub fn live_info(&self) -> Option<&LiveReport> {
        self.synth.as_ref().map(|s| s.info())
    }

    /// Stops the live synth and files its report.
    fn stop_live(&mut self) {
        if let Some(mut synth) = self.synth.take() {
            if synth.info().sent > 0 {
                // Let the last notes ring out.
                std::thread::sleep(LIVE_TAIL);
            }
            let report = synth.stop();
            if let Ok(mut reports) = self.settings.live_reports.lock() {
                reports.push(report);
            }
        }
    }

    /// Messages routed so far.
    pub fn routed(&self) -> u64 {
        self.routed
    }

    fn deliver(&mut self) -> io::Result<()> {
        for msg in self.out.drain(..) {
            self.routed += 1;
            match self.outputs.get_mut(msg.output as usize) {
                Some(Some(out)) => out.send(&msg, &self.mapping),
                _ => {
                    if let Some(synth) = self.synth.as_mut() {
                        synth.send(&msg);
                    }
                }
            }
            for file in self.files.iter_mut() {
                file.send(&msg, &self.mapping);
            }
            let to_monitor = self.monitor_all
                || matches!(
                    self.mapping
                        .outputs
                        .get(msg.output as usize)
                        .map(|o| &o.kind),
                    Some(OutputKind::Monitor)
                );
            if to_monitor {
                self.line.clear();
                let _ = monitor::write_line(&mut self.line, &msg, &self.mapping);
                self.line.push('\n');
                self.lines.write_all(self.line.as_bytes())?;
            }
        }
        // Outputs batch datagrams and bundles until told to push them out.
        for out in self.outputs.iter_mut().flatten() {
            out.tick();
        }
        Ok(())
    }

    /// Ends the notes of changed routes, then reopens the outputs of the new mapping by name
    /// (an output whose settings did not change is kept).
    fn swap_outputs(&mut self, changed: &[crate::mapping::schema::RouteId], new: &Mapping) {
        for out in self.outputs.iter_mut().flatten() {
            out.end_routes(changed);
        }
        for file in self.files.iter_mut() {
            file.end_routes(changed);
        }
        let mut old: Vec<(String, OutputKind, OpenedOutput)> = self
            .mapping
            .outputs
            .iter()
            .zip(self.outputs.drain(..))
            .map(|(o, opened)| (o.name.to_string(), o.kind.clone(), opened))
            .collect();
        for o in &new.outputs {
            let kept = old
                .iter()
                .position(|(name, kind, _)| **name == *o.name && same_connection(kind, &o.kind));
            let opened = match kept {
                Some(i) => old.remove(i).2,
                None => match open_output(&o.kind, &o.name, &self.settings) {
                    Ok(out) => out,
                    Err(e) => {
                        eprintln!("warning: {e}");
                        None
                    }
                },
            };
            self.outputs.push(opened);
        }
        for (_, _, opened) in old.iter_mut() {
            if let Some(out) = opened {
                out.close();
            }
        }
        // The live synth is reopened only when its voice layout or its patches changed.
        let relayout = self.synth.is_some() && synth_changed(&self.mapping, new);
        let appeared = self.synth.is_none()
            && self.settings.live.is_some()
            && self.settings.scsynth.is_none()
            && VoiceMap::from_mapping(new).total > 0;
        if relayout || appeared {
            self.stop_live();
            match open_live(new, &self.settings) {
                Ok(synth) => self.synth = synth,
                Err(e) => eprintln!("warning: {e}"),
            }
        }
    }

    fn check_reload(&mut self) -> io::Result<()> {
        let Some(reload) = self.watcher.as_ref().and_then(|w| w.try_recv()) else {
            return Ok(());
        };
        match reload {
            Reload::Applied(mapping) => {
                // Pending values of changed routes are dropped with them; outputs end the
                // notes of those routes once note-playing outputs exist.
                let changed = self.router.reload(&mapping);
                self.swap_outputs(&changed, &mapping);
                self.mapping = mapping;
                eprintln!(
                    "mapping {}: reloaded ({} routes changed)",
                    self.path.display(),
                    changed.len()
                );
            }
            Reload::Rejected(diags) => {
                eprintln!(
                    "mapping {}: edit rejected, keeping the previous mapping:\n{diags}",
                    self.path.display()
                );
            }
        }
        Ok(())
    }
}

impl EventConsumer for Dispatcher {
    fn event(&mut self, event: &Event) -> io::Result<()> {
        let now = self.clock.at(event);
        self.router.route(now, event, &mut self.out);
        self.router.tick(now, &mut self.out);
        self.deliver()
    }

    fn flush(&mut self) -> io::Result<()> {
        self.check_reload()?;
        self.lines.flush()
    }

    fn idle(&mut self) -> io::Result<()> {
        self.check_reload()?;
        let now = self.clock.idle_now();
        self.router.tick(now, &mut self.out);
        self.deliver()?;
        self.lines.flush()
    }

    fn finish(&mut self) -> io::Result<()> {
        let now = self.clock.idle_now();
        self.router.finish(now, &mut self.out);
        self.deliver()?;
        for out in self.outputs.iter_mut().flatten() {
            out.close();
        }
        for file in self.files.iter_mut() {
            file.close();
        }
        self.stop_live();
        self.lines.flush()
    }
}

/// Opens the built-in synth on an audio device for the mapping's `synth` outputs, when the
/// settings ask for live playback and scsynth does not play them. No device at all is a
/// warning (the run goes on without sound); a device that was asked for by name and is not
/// there, or bad options, are errors.
fn open_live(mapping: &Mapping, settings: &OutputSettings) -> io::Result<Option<SynthOutput>> {
    let Some(options) = &settings.live else {
        return Ok(None);
    };
    if settings.scsynth.is_some() || VoiceMap::from_mapping(mapping).total == 0 {
        return Ok(None);
    }
    match SynthOutput::open(mapping, options) {
        Ok(synth) => Ok(Some(synth)),
        Err(e @ (LiveError::NoDevice { .. } | LiveError::NoSynth)) => {
            eprintln!("warning: {e}; going on without sound");
            Ok(None)
        }
        Err(e) => Err(io::Error::other(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::parse_str;

    fn mapping(synth: &str) -> Mapping {
        let src = format!(
            "[outputs.s]\nkind = \"synth\"\n{synth}\n[outputs.m]\nkind = \"monitor\"\n\
             [[route]]\noutput = \"s\"\nmatch = {{ metric = \"loss\" }}\nto = {{ param = \"amp\" }}\n"
        );
        parse_str(&src, "d.toml").unwrap_or_else(|d| panic!("{d}"))
    }

    #[test]
    fn the_live_synth_is_reopened_for_a_new_layout_or_new_patches_only() {
        let base = mapping("voices = 4");
        assert!(!synth_changed(&base, &mapping("voices = 4")));
        // The same patches, stated: nothing to reopen.
        assert!(!synth_changed(
            &base,
            &mapping("voices = 4\npatch = \"sine\"")
        ));
        assert!(synth_changed(&base, &mapping("voices = 5")));
        assert!(synth_changed(
            &base,
            &mapping("voices = 4\npatch = \"pluck\"")
        ));
        assert!(synth_changed(
            &base,
            &mapping("voices = 4\npatches = { 3 = \"drone\" }")
        ));
        // scsynth playing the voices keeps its connection when only patches change.
        let kind = |m: &Mapping| {
            m.outputs[m.output_by_name("s").unwrap() as usize]
                .kind
                .clone()
        };
        let pluck = mapping("voices = 4\npatch = \"pluck\"");
        assert!(same_connection(&kind(&base), &kind(&pluck)));
        assert!(!same_connection(
            &kind(&base),
            &kind(&mapping("voices = 5"))
        ));
    }
}
