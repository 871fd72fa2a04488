//! Routing on the consumer thread: events go through the [`Router`] of the current mapping,
//! and each message goes to every output that takes it. All of them implement the one
//! [`Output`] trait:
//!
//! | output | takes |
//! | --- | --- |
//! | a MIDI port, an OSC peer, scsynth (`--scsynth`) | the messages of its mapping output |
//! | the built-in synth live on an audio device ([`LiveSynth`]) | those of `synth` outputs no port plays |
//! | the built-in synth rendered to a WAV ([`crate::output::wav::WavOutput`], `render`) | the same |
//! | the [`MonitorOutput`] | those of `monitor` outputs, or every message with `--monitor` |
//! | the file sinks (`--midi-file`, `--osc-score`) | every message |
//!
//! Saving the mapping file swaps in the new mapping (an invalid edit keeps the old one and
//! prints the problems): each output's [`Output::reload`] ends the notes of changed routes
//! and says whether it can go on; those that cannot are closed and reopened for the new one.

use std::io;
use std::path::{Path, PathBuf};

use crate::event::{Event, Payload};
use crate::mapping::schema::{Mapping, OutputKind};
use crate::mapping::watch::{MappingWatcher, Reload};
use crate::message::Message;
use crate::output::midi_file::{MidiFileConfig, MidiFileWriter};
use crate::output::osc_score::ScoreWriter;
use crate::output::{Output, Reloaded};
use crate::pipeline::consume::EventConsumer;
use crate::pipeline::Report;
use crate::route::clock::{Clock, PlaybackClock};
use crate::route::Router;
use crate::synth::live::{LiveOptions, LiveReport};

use super::live::LiveSynth;
use super::monitor::{LineSink, MonitorOutput};
use super::ports::Port;
use super::sound_controls::{SoundChange, SoundControls};

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
    /// The clock that rate limits, coalescing and the monitor's times run on.
    pub clock: PlaybackClock,
    /// On the step clock, the longest a jump in the step counter lasts, in steps (None:
    /// [`crate::route::clock::DEFAULT_MAX_GAP_STEPS`]).
    pub max_gap_steps: Option<u64>,
    /// Write the file sinks only: open no port of the mapping and no audio device (an
    /// offline render).
    pub files_only: bool,
}

impl OutputSettings {
    /// The file sinks these settings ask for (`--midi-file`, `--osc-score`), in that order.
    /// Creating the score file can fail; the MIDI file is written when it is closed.
    pub fn file_outputs(&self) -> io::Result<Vec<Box<dyn Output>>> {
        let mut files: Vec<Box<dyn Output>> = Vec::new();
        if let Some((path, config)) = &self.midi_file {
            files.push(Box::new(MidiFileWriter::new(path, *config)));
        }
        if let Some((path, step_secs)) = &self.osc_score {
            let score = ScoreWriter::create(path, *step_secs)
                .map_err(|e| io::Error::other(format!("--osc-score {}: {e}", path.display())))?;
            files.push(Box::new(score));
        }
        Ok(files)
    }
}

/// Which routed messages an attached output takes.
#[derive(Clone, Debug, PartialEq)]
enum Feed {
    /// Those of the mapping output of this name.
    Port(std::sync::Arc<str>),
    /// Those of `synth` outputs that no port plays (the built-in synth).
    Synth,
    /// Those of `monitor` outputs, or all of them.
    Monitor {
        /// Every message (`--monitor`).
        all: bool,
    },
    /// Every message (file sinks).
    All,
}

/// An output and what it takes.
struct Attached {
    feed: Feed,
    out: Box<dyn Output>,
    /// It applies the master volume itself (the built-in synth): its messages go unscaled.
    own_gain: bool,
}

impl Attached {
    fn new(feed: Feed, out: Box<dyn Output>) -> Self {
        Attached {
            feed,
            out,
            own_gain: false,
        }
    }
}

/// Routes events and hands messages to outputs.
pub struct Dispatcher {
    path: PathBuf,
    mapping: Mapping,
    router: Router,
    watcher: Option<MappingWatcher>,
    out: Vec<Message>,
    clock: Clock,
    routed: u64,
    settings: OutputSettings,
    attached: Vec<Attached>,
    /// Per mapping output: the attached outputs that take its messages.
    takers: Vec<Vec<usize>>,
    /// Reports of outputs closed so far (on reloads, and at the end).
    report: Report,
    /// What the live synth said when it opened, while it plays.
    playing: Option<LiveReport>,
    /// Master volume, muted and soloed routes (from `control` events).
    sound: SoundControls,
    /// The clock time outputs were last advanced to.
    advanced: f64,
}

impl Dispatcher {
    /// Routes with `mapping` (already validated, from `path`), opening its outputs and the
    /// file sinks `settings` ask for; monitor lines go to `lines` (`monitor_all`: every
    /// message); `watch` reloads the file when it changes.
    ///
    /// A port the mapping names that cannot open (no ALSA sequencer on a training server, a
    /// peer not listening) gets one warning and the run goes on without it, so file outputs
    /// and the rest still work; a port named on the command line (`--midi-virtual`,
    /// `--scsynth`), an audio device asked for by name, or a file that cannot be created are
    /// errors here, before anything starts.
    pub fn with_outputs(
        path: &Path,
        mapping: Mapping,
        monitor_all: bool,
        watch: bool,
        lines: LineSink,
        settings: OutputSettings,
    ) -> io::Result<Self> {
        let mut attached = Vec::new();
        for o in &mapping.outputs {
            match Port::open(&o.kind, &o.name, &settings) {
                Ok(Some(port)) => {
                    attached.push(Attached::new(Feed::Port(o.name.clone()), Box::new(port)))
                }
                Ok(None) => {}
                Err(e) if Port::named_by_flag(&o.kind, &settings) => return Err(e),
                Err(e) => eprintln!("warning: {e}; going on without it"),
            }
        }
        let mut playing = None;
        if let Some(synth) = open_live(&mapping, &settings)? {
            playing = Some(synth.info().clone());
            attached.push(Attached::new(Feed::Synth, Box::new(synth)));
        }
        for out in settings.file_outputs()? {
            attached.push(Attached::new(Feed::All, out));
        }
        attached.push(Attached::new(
            Feed::Monitor { all: monitor_all },
            Box::new(MonitorOutput::new(lines)),
        ));
        let watcher = if watch {
            Some(MappingWatcher::new(path).map_err(|e| io::Error::other(e.to_string()))?)
        } else {
            None
        };
        let mut d = Dispatcher {
            path: path.to_path_buf(),
            router: Router::new(&mapping),
            sound: SoundControls::new(&mapping),
            mapping,
            watcher,
            out: Vec::with_capacity(256),
            clock: Clock::with_max_gap(
                settings.clock,
                settings
                    .max_gap_steps
                    .unwrap_or(crate::route::clock::DEFAULT_MAX_GAP_STEPS),
            ),
            routed: 0,
            settings,
            attached,
            takers: Vec::new(),
            report: Report::default(),
            playing,
            advanced: f64::NEG_INFINITY,
        };
        d.wire();
        Ok(d)
    }

    /// Plays the mapping's `synth` outputs that no port plays on `out` too (an offline
    /// render's WAV).
    pub fn attach_synth(&mut self, out: Box<dyn Output>) {
        self.attached.push(Attached::new(Feed::Synth, out));
        self.wire();
    }

    /// Tells every output that the clock reached `now`.
    fn advance(&mut self, now: f64) {
        if now > self.advanced {
            self.advanced = now;
            for a in self.attached.iter_mut() {
                a.out.advance(now);
            }
        }
    }

    /// The live synth's device, sample rate and buffer sizes, when it plays.
    pub fn live_info(&self) -> Option<&LiveReport> {
        self.playing.as_ref()
    }

    /// Gives every output the master volume; those with a gain of their own apply it.
    fn set_volume(&mut self) {
        let gain = self.sound.volume();
        for a in self.attached.iter_mut() {
            a.own_gain = a.out.set_volume(gain);
        }
    }

    /// Which attached outputs take the messages of each mapping output (and the volume).
    fn wire(&mut self) {
        self.set_volume();
        let attached = &self.attached;
        self.takers = self
            .mapping
            .outputs
            .iter()
            .map(|o| {
                let ported = attached
                    .iter()
                    .any(|a| matches!(&a.feed, Feed::Port(n) if *n == o.name));
                (0..attached.len())
                    .filter(|&i| match &attached[i].feed {
                        Feed::Port(n) => *n == o.name,
                        Feed::Synth => !ported && matches!(o.kind, OutputKind::Synth { .. }),
                        Feed::Monitor { all } => *all || o.kind == OutputKind::Monitor,
                        Feed::All => true,
                    })
                    .collect()
            })
            .collect();
    }

    fn deliver(&mut self) {
        for msg in self.out.drain(..) {
            if !self.sound.pass(&msg) {
                continue;
            }
            self.routed += 1;
            let scaled = self.sound.scaled(&msg);
            if let Some(takers) = self.takers.get(msg.output as usize) {
                for &i in takers {
                    let a = &mut self.attached[i];
                    let m = match &scaled {
                        Some(s) if !a.own_gain => s,
                        _ => &msg,
                    };
                    a.out.send(m, &self.mapping);
                }
            }
        }
        // Outputs batch datagrams and bundles until told to push them out.
        for a in self.attached.iter_mut() {
            a.out.tick();
        }
    }

    /// Flushes every output; the first error ends the routing (the monitor's reader left).
    fn flush_outputs(&mut self) -> io::Result<()> {
        let mut first = Ok(());
        for a in self.attached.iter_mut() {
            if let (Err(e), true) = (a.out.flush(), first.is_ok()) {
                first = Err(e);
            }
        }
        first
    }

    /// Closes an output and files its report.
    fn retire(&mut self, mut a: Attached) {
        a.out.close();
        if let Some(r) = a.out.report() {
            self.report.add_output(r);
        }
        if a.feed == Feed::Synth {
            self.playing = None;
        }
    }

    /// Moves to `new`: every output ends the notes of `changed` routes and is kept or
    /// reopened; outputs of the new mapping that nothing plays yet are opened (a failure is
    /// a warning now: the run is under way).
    fn swap_outputs(&mut self, changed: &[crate::mapping::schema::RouteId], new: &Mapping) {
        let old = std::mem::take(&mut self.attached);
        for mut a in old {
            match a.out.reload(changed, &self.mapping, new) {
                Reloaded::Kept => self.attached.push(a),
                Reloaded::Reopen => {
                    let feed = a.feed.clone();
                    self.retire(a);
                    if feed == Feed::Synth {
                        self.open_synth(new);
                    }
                }
            }
        }
        for o in &new.outputs {
            let open = self
                .attached
                .iter()
                .any(|a| matches!(&a.feed, Feed::Port(n) if *n == o.name));
            if open {
                continue;
            }
            match Port::open(&o.kind, &o.name, &self.settings) {
                Ok(Some(port)) => self
                    .attached
                    .push(Attached::new(Feed::Port(o.name.clone()), Box::new(port))),
                Ok(None) => {}
                Err(e) => eprintln!("warning: {e}"),
            }
        }
        if !self.attached.iter().any(|a| a.feed == Feed::Synth) {
            self.open_synth(new);
        }
    }

    /// Opens the live synth for `new` if the settings ask for one (a failure is a warning).
    fn open_synth(&mut self, new: &Mapping) {
        match open_live(new, &self.settings) {
            Ok(Some(synth)) => {
                self.playing = Some(synth.info().clone());
                self.attached
                    .push(Attached::new(Feed::Synth, Box::new(synth)));
            }
            Ok(None) => {}
            Err(e) => eprintln!("warning: {e}"),
        }
    }

    /// Switches to the mapping `by` places along `[controls] mappings` from this one (a
    /// `mapping_next` or `mapping_prev` control). The new mapping keeps the list, so the
    /// next press goes on along it.
    fn step_mapping(&mut self, by: i32) {
        let list = self.mapping.controls.mappings.clone();
        if list.is_empty() {
            return;
        }
        let here = list.iter().position(|p| same_file(p, &self.path));
        let n = list.len() as i32;
        let next = match here {
            Some(i) => (i as i32 + by).rem_euclid(n),
            None if by > 0 => 0,
            None => n - 1,
        } as usize;
        let path = list[next].clone();
        match crate::mapping::check(&path) {
            Ok(mut mapping) => {
                if mapping.controls.mappings.is_empty() {
                    mapping.controls.mappings = list;
                }
                let changed = self.router.reload(&mapping);
                self.swap_outputs(&changed, &mapping);
                self.mapping = mapping;
                self.path = path;
                self.sound.rewire(&self.mapping);
                self.wire();
                eprintln!("mapping {}: switched to by a control", self.path.display());
            }
            Err(diags) => eprintln!(
                "mapping {}: cannot switch to it, keeping the current one:\n{diags}",
                path.display()
            ),
        }
    }

    fn check_reload(&mut self) {
        let Some(reload) = self.watcher.as_ref().and_then(|w| w.try_recv()) else {
            return;
        };
        match reload {
            Reload::Applied(mapping) => {
                // Pending values of changed routes are dropped with them; outputs end the
                // notes of those routes.
                let changed = self.router.reload(&mapping);
                self.swap_outputs(&changed, &mapping);
                self.mapping = *mapping;
                self.sound.rewire(&self.mapping);
                self.wire();
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
    }
}

impl EventConsumer for Dispatcher {
    fn event(&mut self, event: &Event) -> io::Result<()> {
        if let Payload::Control { target, value, .. } = &event.payload {
            match self.sound.apply(target, *value, &self.mapping) {
                SoundChange::Mapping(by) => self.step_mapping(by),
                SoundChange::Volume => {
                    let now = self.clock.at(event);
                    self.advance(now);
                    self.set_volume();
                }
                SoundChange::Changed | SoundChange::None => {}
            }
        }
        let now = self.clock.at(event);
        if now > self.advanced {
            // Time moved on: what fell due goes out before the new event is routed.
            self.advance(now);
            self.router.tick(now, &mut self.out);
        }
        self.router.route(now, event, &mut self.out);
        self.router.tick(now, &mut self.out);
        self.deliver();
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.check_reload();
        self.flush_outputs()
    }

    fn idle(&mut self) -> io::Result<()> {
        self.check_reload();
        let now = self.clock.idle_now();
        self.advance(now);
        self.router.tick(now, &mut self.out);
        self.deliver();
        self.flush_outputs()
    }

    fn finish(&mut self) -> io::Result<()> {
        let now = self.clock.end();
        self.advance(now);
        self.router.finish(now, &mut self.out);
        self.deliver();
        let flushed = self.flush_outputs();
        for a in std::mem::take(&mut self.attached) {
            self.retire(a);
        }
        flushed
    }

    fn report(&mut self, report: &mut Report) {
        // A dispatcher dropped from the stream (its monitor's reader left) still closes
        // its outputs: MIDI notes end, files are written.
        for a in std::mem::take(&mut self.attached) {
            self.retire(a);
        }
        let mine = std::mem::take(&mut self.report);
        report.routed += self.routed;
        report.synth.extend(mine.synth);
        report.midi.extend(mine.midi);
        report.errors.extend(mine.errors);
        report.rendered = report.rendered.take().or(mine.rendered);
    }
}

/// Opens the built-in synth on an audio device for the mapping's `synth` outputs, when the
/// settings ask for live playback and scsynth does not play them (see [`LiveSynth::open`]).
fn open_live(mapping: &Mapping, settings: &OutputSettings) -> io::Result<Option<LiveSynth>> {
    if settings.files_only {
        return Ok(None);
    }
    match &settings.live {
        Some(options) if settings.scsynth.is_none() => {
            LiveSynth::open(mapping, options).map_err(|e| io::Error::other(e.to_string()))
        }
        _ => Ok(None),
    }
}

/// Whether two paths name the same file (either may be relative).
fn same_file(a: &Path, b: &Path) -> bool {
    a == b
        || matches!(
            (std::fs::canonicalize(a), std::fs::canonicalize(b)),
            (Ok(x), Ok(y)) if x == y
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::parse_str;
    use crate::pipeline::live::synth_changed;
    use crate::pipeline::ports::same_connection;

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

    /// Lines written to a shared buffer, read back after the run.
    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl io::Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn monitor_lines(monitor_all: bool) -> String {
        let src = "[outputs.s]\nkind = \"synth\"\n[outputs.m]\nkind = \"monitor\"\n\
                   [[route]]\nname = \"to-synth\"\noutput = \"s\"\nmatch = { metric = \"loss\" }\nto = { param = \"amp\" }\n\
                   [[route]]\nname = \"to-monitor\"\noutput = \"m\"\nmatch = { metric = \"loss\" }\nto = { param = \"amp\" }\n";
        let mapping = parse_str(src, "d.toml").unwrap_or_else(|d| panic!("{d}"));
        let lines = Shared::default();
        let mut d = Dispatcher::with_outputs(
            Path::new("d.toml"),
            mapping,
            monitor_all,
            false,
            Box::new(lines.clone()),
            OutputSettings::default(),
        )
        .unwrap();
        for step in 0..3 {
            let e = Event::new(
                step,
                0,
                step as f64,
                crate::event::Payload::Loss {
                    value: 1.0 / (1.0 + step as f64),
                },
            );
            d.event(&e).unwrap();
        }
        d.finish().unwrap();
        let mut report = Report::default();
        d.report(&mut report);
        assert_eq!(report.routed, 6, "both routes, every step");
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        text
    }

    #[test]
    fn the_monitor_prints_its_own_outputs_or_everything() {
        let own = monitor_lines(false);
        assert_eq!(own.lines().count(), 3, "{own}");
        assert!(own.lines().all(|l| l.contains("to-monitor")), "{own}");
        let all = monitor_lines(true);
        assert_eq!(all.lines().count(), 6, "{all}");
        assert_eq!(all.matches("to-synth").count(), 3, "{all}");
    }
}
