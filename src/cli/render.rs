//! `sonograd render` and `sonograd devices`: the built-in synth offline (one run, or two side
//! by side), and the audio devices it could play on.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

use sonograd::diagnose::{Detector, WithDiagnoses};
use sonograd::mapping::Mapping;
use sonograd::source::replay::has_diagnoses;
use sonograd::source::replay_paced::ReplayInput;
use sonograd::synth::compare::{render_compare, CompareMode};
use sonograd::synth::live::list_devices;
use sonograd::synth::render::{render_recording, RenderOptions, WavFormat};

#[derive(Args, Debug, Clone)]
pub struct RenderArgs {
    /// The run to render: a JSON-lines recording, a CSV export (with --csv-columns) or
    /// TensorBoard event files; a second run plays with it, aligned by step (A left, B right).
    #[arg(required = true, num_args = 1..=2, value_name = "RUN")]
    pub files: Vec<PathBuf>,
    /// The WAV file to write.
    #[arg(short, long, value_name = "WAV")]
    pub output: PathBuf,
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

/// Renders a recording to a WAV through `mapping`; stops at the first malformed line.
pub fn render_file(
    recording: &Path,
    mapping: &Mapping,
    opts: &RenderOptions,
    wav: &Path,
    quiet: bool,
) -> Result<()> {
    render_input(
        &ReplayInput::JsonLines(recording.to_path_buf()),
        mapping,
        opts,
        wav,
        quiet,
    )
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

/// Renders any input to a WAV through `mapping`; stops at the first bad line or file.
pub fn render_input(
    input: &ReplayInput,
    mapping: &Mapping,
    opts: &RenderOptions,
    wav: &Path,
    quiet: bool,
) -> Result<()> {
    let mut reader = input.open()?;
    let mut failure = None;
    let events = reader.until_error(&mut failure);
    let report = if needs_diagnosis(input, mapping) {
        let diagnosed = WithDiagnoses::new(events, Detector::new(mapping.diagnose));
        render_recording(diagnosed, mapping, opts, wav)
    } else {
        render_recording(events, mapping, opts, wav)
    }
    .with_context(|| format!("rendering {}", wav.display()))?;
    if let Some(e) = failure {
        return Err(e.into());
    }
    if !quiet {
        eprintln!(
            "rendered {} steps ({} events) to {}: {:.1} s of audio",
            report.steps,
            report.events,
            wav.display(),
            report.seconds(opts.sample_rate)
        );
    }
    Ok(())
}

pub fn run(args: &RenderArgs) -> Result<()> {
    let (mapping, opts) = args.offline.load()?;
    let inputs: Vec<ReplayInput> = args
        .files
        .iter()
        .map(|f| args.inputs.open(f))
        .collect::<Result<_>>()?;
    match inputs.as_slice() {
        [one] => render_input(one, &mapping, &opts, &args.output, args.offline.quiet),
        [a, b] => {
            let mode = match args.compare {
                Compare::Side => CompareMode::Side,
                Compare::Alternate => CompareMode::Alternate,
            };
            render_pair(
                a,
                b,
                &mapping,
                &opts,
                mode,
                &args.output,
                args.offline.quiet,
            )
        }
        _ => anyhow::bail!("render takes one or two runs"),
    }
}

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
