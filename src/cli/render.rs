//! `sonograd render` and `sonograd devices`: the built-in synth offline, and the audio
//! devices it could play on.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

use sonograd::diagnose::{Detector, WithDiagnoses};
use sonograd::event::Event;
use sonograd::mapping::Mapping;
use sonograd::output::midi_file::{MidiFileConfig, MidiFileWriter};
use sonograd::output::osc_score::ScoreWriter;
use sonograd::output::Output;
use sonograd::source::replay::{has_diagnoses, Recording};
use sonograd::synth::live::list_devices;
use sonograd::synth::render::{
    render_events_with, render_recording_with, RenderOptions, WavFormat,
};

#[derive(Args, Debug, Clone)]
pub struct RenderArgs {
    /// The JSON-lines recording to render.
    pub file: PathBuf,
    /// The WAV file to write (the mapping's synth outputs).
    #[arg(short, long, value_name = "WAV", required_unless_present_any = ["midi_file", "osc_score"])]
    pub output: Option<PathBuf>,
    /// Also write the MIDI messages to this Standard MIDI File, on the same step clock
    /// (--step-ms a step: 4 steps a quarter note, tempo to match).
    #[arg(long, value_name = "FILE")]
    pub midi_file: Option<PathBuf>,
    /// Also write an scsynth NRT score, on the same step clock (--step-ms a step).
    #[arg(long, value_name = "FILE")]
    pub osc_score: Option<PathBuf>,
    #[command(flatten)]
    pub offline: OfflineArgs,
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

/// Renders a recording through `mapping` to a WAV and `files` (MIDI file, OSC score) in one
/// pass; with no `wav`, only the files. Stops at the first malformed line.
pub fn render_files(
    recording: &Path,
    mapping: &Mapping,
    opts: &RenderOptions,
    wav: Option<&Path>,
    files: &mut [Box<dyn Output>],
    quiet: bool,
) -> Result<()> {
    let mut reader = Recording::open(recording)?;
    let mut failure = None;
    let events = reader.until_error(&mut failure);
    // A recording without diagnoses (made with --no-diagnose, or by another tool) is
    // diagnosed on the way, so its problems sound too.
    let mut render = |events: &mut dyn Iterator<Item = Event>| match wav {
        Some(wav) => render_recording_with(events, mapping, opts, wav, files)
            .with_context(|| format!("rendering {}", wav.display())),
        None => render_events_with(
            events,
            mapping,
            opts,
            None::<std::io::Cursor<Vec<u8>>>,
            files,
        )
        .context("rendering"),
    };
    let report = if mapping.diagnose.enabled && !has_diagnoses(recording) {
        render(&mut WithDiagnoses::new(
            events,
            Detector::new(mapping.diagnose),
        ))
    } else {
        render(&mut { events })
    }?;
    if let Some(e) = failure {
        return Err(e.into());
    }
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

pub fn run(args: &RenderArgs) -> Result<()> {
    let (mapping, opts) = args.offline.load()?;
    let mut files: Vec<Box<dyn Output>> = Vec::new();
    if let Some(path) = &args.midi_file {
        // 4 steps a quarter note at the tempo that gives each step --step-ms.
        let config = MidiFileConfig {
            bpm: 60_000.0 / (MIDI_STEPS_PER_BEAT * opts.step_ms),
            steps_per_beat: MIDI_STEPS_PER_BEAT,
            ..MidiFileConfig::default()
        };
        files.push(Box::new(MidiFileWriter::new(path, config)));
    }
    if let Some(path) = &args.osc_score {
        let score = ScoreWriter::create(path, opts.step_ms / 1000.0)
            .with_context(|| format!("--osc-score {}", path.display()))?;
        files.push(Box::new(score));
    }
    render_files(
        &args.file,
        &mapping,
        &opts,
        args.output.as_deref(),
        &mut files,
        args.offline.quiet,
    )?;
    if !args.offline.quiet {
        for path in [&args.midi_file, &args.osc_score].into_iter().flatten() {
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}

/// Steps a quarter note in `render --midi-file`.
const MIDI_STEPS_PER_BEAT: f64 = 4.0;

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
