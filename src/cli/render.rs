//! `sonograd render` and `sonograd devices`: the built-in synth offline (one run, or two side
//! by side), and the audio devices it could play on.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

use sonograd::diagnose::{Detector, WithDiagnoses};
use sonograd::event::Event;
use sonograd::mapping::Mapping;
use sonograd::output::midi_file::MidiFileConfig;
use sonograd::output::wav::WavOutput;
use sonograd::pipeline::dispatch::OutputSettings;
use sonograd::pipeline::render::{feed, rendered};
use sonograd::pipeline::Pipeline;
use sonograd::source::replay::has_diagnoses;
use sonograd::source::replay_paced::ReplayInput;
use sonograd::synth::compare::{render_compare, CompareMode};
use sonograd::synth::live::list_devices;
use sonograd::synth::render::{RenderOptions, WavFormat};

#[derive(Args, Debug, Clone)]
pub struct RenderArgs {
    /// The run to render: a JSON-lines recording, a CSV export (with --csv-columns) or
    /// TensorBoard event files; a second run plays with it, aligned by step (A left, B right).
    #[arg(required = true, num_args = 1..=2, value_name = "RUN")]
    pub files: Vec<PathBuf>,
    /// The WAV file to write (the mapping's synth outputs).
    #[arg(short, long, value_name = "WAV", required_unless_present_any = ["midi_file", "osc_score"])]
    pub output: Option<PathBuf>,
    /// Also write the MIDI messages to this Standard MIDI File, on the same step clock
    /// (--step-ms a step: 4 steps a quarter note, tempo to match). One run only.
    #[arg(long, value_name = "FILE")]
    pub midi_file: Option<PathBuf>,
    /// Also write an scsynth NRT score, on the same step clock (--step-ms a step). One run only.
    #[arg(long, value_name = "FILE")]
    pub osc_score: Option<PathBuf>,
    /// How two runs share the sound: `side` (at once, A left, B right) or `alternate` (A's
    /// step, then B's).
    #[arg(long, value_enum, default_value_t = Compare::Side)]
    pub compare: Compare,
    #[command(flatten)]
    pub inputs: InputArgs,
    #[command(flatten)]
    pub offline: OfflineArgs,
}

/// `--compare`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compare {
    /// Both at once, A on the left, B on the right.
    Side,
    /// A's step, then B's step.
    Alternate,
}

/// How `render` and `report` read inputs other than JSON lines.
#[derive(Args, Debug, Clone, Default)]
pub struct InputArgs {
    /// Read .csv inputs with this column mapping, e.g. step=Step,loss=train/loss.
    #[arg(long, value_name = "MAP")]
    pub csv_columns: Option<String>,
    /// TensorBoard tags to events, overriding the conventions, e.g. loss=train/objective.
    #[arg(long, value_name = "MAP")]
    pub tags: Option<String>,
}

impl InputArgs {
    /// Opens `path` with the reader it needs: TensorBoard for a folder or an event file (with
    /// `--tags`), CSV for a `.csv` file (with `--csv-columns`), JSON lines otherwise.
    /// Warnings about damaged records go to stderr.
    pub fn open(&self, path: &Path) -> Result<ReplayInput> {
        let tb = sonograd::source::input::is_tensorboard(path);
        let csv_name = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        let tags = self.tags.as_deref().filter(|_| tb);
        let csv = self.csv_columns.as_deref().filter(|_| csv_name);
        Ok(super::replay::open_input(path, csv, tags)?.0)
    }
}

/// What `render` and `report` share: how to render, with which mapping, how chatty.
#[derive(Args, Debug, Clone)]
pub struct OfflineArgs {
    #[command(flatten)]
    pub audio: AudioArgs,
    /// Mapping file for the audio (default: the built-in config/default.toml).
    #[arg(long, value_name = "FILE")]
    pub mapping: Option<PathBuf>,
    /// No summary on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

impl OfflineArgs {
    /// The mapping and the validated render options.
    pub fn load(&self) -> Result<(sonograd::mapping::schema::Mapping, RenderOptions)> {
        let output = super::EventOutputArgs {
            mapping: self.mapping.clone(),
            ..Default::default()
        };
        Ok((super::load_mapping(&output)?, self.audio.options()?))
    }
}

/// How audio is rendered; shared by `render`, `train --wav` and `demo`.
#[derive(Args, Debug, Clone)]
pub struct AudioArgs {
    /// Output time per training step, milliseconds (the seed: one audible tone a step).
    #[arg(long, default_value_t = 50.0, value_name = "MS")]
    pub step_ms: f64,
    /// Sample rate of the WAV, Hz.
    #[arg(long, default_value_t = 48_000, value_name = "HZ")]
    pub sample_rate: u32,
    /// Write 32-bit float samples instead of 16-bit integers.
    #[arg(long)]
    pub float: bool,
}

impl AudioArgs {
    /// The validated render options.
    pub fn options(&self) -> Result<RenderOptions> {
        if !(self.step_ms.is_finite() && self.step_ms > 0.0 && self.step_ms <= 60_000.0) {
            anyhow::bail!(
                "--step-ms must be between 0 and 60000, got {}",
                self.step_ms
            );
        }
        if !(8_000..=192_000).contains(&self.sample_rate) {
            anyhow::bail!(
                "--sample-rate must be between 8000 and 192000 Hz, got {}",
                self.sample_rate
            );
        }
        Ok(RenderOptions {
            step_ms: self.step_ms,
            sample_rate: self.sample_rate,
            format: if self.float {
                WavFormat::Float32
            } else {
                WavFormat::Int16
            },
            ..RenderOptions::default()
        })
    }
}

/// Whether an input is diagnosed on the way: one without diagnoses (made with --no-diagnose,
/// or by another tool), so that its problems sound too.
fn needs_diagnosis(input: &ReplayInput, mapping: &Mapping) -> bool {
    mapping.diagnose.enabled
        && match input {
            ReplayInput::JsonLines(p) => !has_diagnoses(p),
            _ => true,
        }
}

/// Renders any input through `mapping` to a WAV and the file sinks of `files` (a MIDI
/// file, an OSC score) in one pass, through the pipeline on the step clock (no `wav`: only
/// the files); stops at the first bad line or file.
pub fn render_input(
    input: &ReplayInput,
    mapping: &Mapping,
    opts: &RenderOptions,
    wav: Option<&Path>,
    files: OutputSettings,
    quiet: bool,
) -> Result<()> {
    // The detector runs on the reading thread (below), overlapping with synthesis.
    let mut builder = Pipeline::builder(mapping.clone())
        .outputs(files)
        .offline(opts)
        .diagnose(false);
    if let Some(wav) = wav {
        let out = WavOutput::create(wav, mapping, opts)
            .with_context(|| format!("rendering {}", wav.display()))?;
        builder = builder.wav(out);
    }
    let mut pipeline = builder.build()?;
    let mut reader = input.open()?;
    let mut failure = None;
    let events = reader.until_error(&mut failure);
    let steps = if needs_diagnosis(input, mapping) {
        let diagnosed = WithDiagnoses::new(events, Detector::new(mapping.diagnose));
        read_ahead(diagnosed, |events| feed(&mut pipeline, events))
    } else {
        read_ahead(events, |events| feed(&mut pipeline, events))
    };
    let done = pipeline.finish();
    if let Some(e) = failure {
        return Err(e.into());
    }
    super::fail_on_errors(&done)?;
    let report = rendered(done, steps)?;
    if !quiet {
        match wav {
            Some(wav) => eprintln!(
                "rendered {} steps ({} events) to {}: {:.1} s of audio",
                report.steps,
                report.events,
                wav.display(),
                report.seconds(opts.sample_rate)
            ),
            None => eprintln!("rendered {} steps ({} events)", report.steps, report.events),
        }
    }
    Ok(())
}

/// Runs `f` over `events` read ahead on a second thread, in batches: reading, parsing and
/// diagnosing the input overlap with synthesis. The same events in the same order, so the
/// same output; at most a few batches are in flight (memory stays flat). If `f` stops early,
/// the reader stops at its next batch.
fn read_ahead<R>(
    events: impl Iterator<Item = Event> + Send,
    f: impl FnOnce(&mut dyn Iterator<Item = Event>) -> R,
) -> R {
    const BATCH: usize = 1024;
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Event>>(4);
        scope.spawn(move || {
            let mut events = events;
            loop {
                let batch: Vec<Event> = events.by_ref().take(BATCH).collect();
                let last = batch.len() < BATCH;
                if batch.is_empty() || tx.send(batch).is_err() || last {
                    break;
                }
            }
        });
        let mut received = rx.into_iter().flatten();
        f(&mut received)
    })
}

pub fn run(args: &RenderArgs) -> Result<()> {
    let (mapping, opts) = args.offline.load()?;
    let inputs: Vec<ReplayInput> = args
        .files
        .iter()
        .map(|f| args.inputs.open(f))
        .collect::<Result<_>>()?;
    match inputs.as_slice() {
        [one] => {
            render_input(
                one,
                &mapping,
                &opts,
                args.output.as_deref(),
                file_outputs(args, &opts),
                args.offline.quiet,
            )?;
            if !args.offline.quiet {
                for path in [&args.midi_file, &args.osc_score].into_iter().flatten() {
                    eprintln!("wrote {}", path.display());
                }
            }
            Ok(())
        }
        [a, b] => {
            if args.midi_file.is_some() || args.osc_score.is_some() {
                anyhow::bail!("--midi-file and --osc-score take one run; two runs render to a WAV");
            }
            let Some(wav) = &args.output else {
                anyhow::bail!("two runs render side by side to a WAV: give -o FILE.wav");
            };
            let mode = match args.compare {
                Compare::Side => CompareMode::Side,
                Compare::Alternate => CompareMode::Alternate,
            };
            render_pair(a, b, &mapping, &opts, mode, wav, args.offline.quiet)
        }
        _ => anyhow::bail!("render takes one or two runs"),
    }
}

/// The file outputs `render` was asked for, timed by the step clock: the pipeline's own file
/// sinks, as `replay --midi-file --osc-score` writes them.
fn file_outputs(args: &RenderArgs, opts: &RenderOptions) -> OutputSettings {
    OutputSettings {
        // 4 steps a quarter note at the tempo that gives each step --step-ms.
        midi_file: args.midi_file.clone().map(|path| {
            let config = MidiFileConfig {
                bpm: 60_000.0 / (MIDI_STEPS_PER_BEAT * opts.step_ms),
                steps_per_beat: MIDI_STEPS_PER_BEAT,
                ..MidiFileConfig::default()
            };
            (path, config)
        }),
        osc_score: args
            .osc_score
            .clone()
            .map(|path| (path, opts.step_ms / 1000.0)),
        ..OutputSettings::default()
    }
}

/// Steps a quarter note in `render --midi-file`.
const MIDI_STEPS_PER_BEAT: f64 = 4.0;

type Events<'a> = Box<dyn Iterator<Item = sonograd::event::Event> + 'a>;

/// `events`, diagnosed on the way when `input` needs it.
fn diagnosed<'a>(input: &ReplayInput, mapping: &Mapping, events: Events<'a>) -> Events<'a> {
    if needs_diagnosis(input, mapping) {
        Box::new(WithDiagnoses::new(events, Detector::new(mapping.diagnose)))
    } else {
        events
    }
}

/// Renders two inputs together (see [`sonograd::synth::compare`]).
pub fn render_pair(
    a: &ReplayInput,
    b: &ReplayInput,
    mapping: &Mapping,
    opts: &RenderOptions,
    mode: CompareMode,
    wav: &Path,
    quiet: bool,
) -> Result<()> {
    let (mut ra, mut rb) = (a.open()?, b.open()?);
    let (mut fa, mut fb) = (None, None);
    let ea = diagnosed(a, mapping, Box::new(ra.until_error(&mut fa)));
    let eb = diagnosed(b, mapping, Box::new(rb.until_error(&mut fb)));
    let report = render_compare(ea, eb, mapping, opts, mode, wav)
        .with_context(|| format!("rendering {}", wav.display()))?;
    if let Some(failure) = fa.or(fb) {
        return Err(failure.into());
    }
    if !quiet {
        eprintln!(
            "rendered {} and {} {} ({} steps; {} and {} events) to {}: {:.1} s of audio",
            a.path().display(),
            b.path().display(),
            match mode {
                CompareMode::Side => "side by side (left and right)",
                CompareMode::Alternate => "alternating step by step",
            },
            report.steps,
            report.events.0,
            report.events.1,
            wav.display(),
            report.frames as f64 / opts.sample_rate as f64
        );
    }
    Ok(())
}

/// `sonograd devices`.
pub fn devices() -> Result<()> {
    for host in list_devices() {
        match host.devices {
            Ok(devices) if devices.is_empty() => println!("{}: no output devices", host.host),
            Ok(devices) => {
                println!("{}:", host.host);
                for d in devices {
                    let default = if d.is_default { " (default)" } else { "" };
                    println!("  {}  {}{}  [{}]", d.id, d.name, default, d.config);
                }
            }
            Err(e) => println!("{}: unavailable ({e})", host.host),
        }
    }
    Ok(())
}
