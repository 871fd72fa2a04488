//! `sonograd render` and `sonograd devices`: the built-in synth offline, and the audio
//! devices it could play on.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

use sonograd::diagnose::{Detector, WithDiagnoses};
use sonograd::mapping::Mapping;
use sonograd::source::replay::{has_diagnoses, Recording};
use sonograd::synth::live::list_devices;
use sonograd::synth::render::{render_recording, RenderOptions, WavFormat};

#[derive(Args, Debug, Clone)]
pub struct RenderArgs {
    /// The JSON-lines recording to render.
    pub file: PathBuf,
    /// The WAV file to write.
    #[arg(short, long, value_name = "WAV")]
    pub output: PathBuf,
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

/// Renders a recording to a WAV through `mapping`; stops at the first malformed line.
pub fn render_file(
    recording: &Path,
    mapping: &Mapping,
    opts: &RenderOptions,
    wav: &Path,
    quiet: bool,
) -> Result<()> {
    let mut reader = Recording::open(recording)?;
    let mut failure = None;
    let events = reader.until_error(&mut failure);
    // A recording without diagnoses (made with --no-diagnose, or by another tool) is
    // diagnosed on the way, so its problems sound too.
    let report = if mapping.diagnose.enabled && !has_diagnoses(recording) {
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
    render_file(
        &args.file,
        &mapping,
        &opts,
        &args.output,
        args.offline.quiet,
    )
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
