//! `sonograd demo`: the seed's four settings (and Adam), recorded side by side.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use sonograd::source::train::optim::OptimizerKind;

use super::EventOutputArgs;

#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Folder for the recordings.
    #[arg(long, default_value = "demo")]
    pub out_dir: PathBuf,
    /// Steps per run (the seed used 200).
    #[arg(long, default_value_t = 200)]
    pub steps: u64,
    /// Seed of every run.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub audio: super::render::AudioArgs,
    /// Only write the WAVs; do not play them (also: SONOGRAD_NO_AUDIO=1).
    #[arg(long)]
    pub no_audio: bool,
    /// Audio device to play on (see `sonograd devices`).
    #[arg(long, value_name = "DEVICE")]
    pub audio_device: Option<String>,
}

/// What to listen for in each of the demo's runs, printed before it plays.
pub const LISTEN_FOR: &[(&str, &str)] = &[
    ("sgd_0.01", "four layers in four registers, each stepping a few notes around where it began and drifting slowly up: healthy training"),
    ("sgd_0.1", "the same four lines leaping up and falling back by an octave, all together, again and again: lr too high, diverging and recovering"),
    ("sgd_1.0", "every layer shooting to the top of its register by step 2, the explosion warning, then the low non-finite alarm to the end"),
    ("sgd_1.0_bs_256", "the same climb over a few more steps, the warning, then the non-finite alarm from step 14"),
    ("adam_0.01", "one early leap up, then lines that settle below where they began and move in wide steps: healthy"),
];

/// The demo's runs (name, optimizer, learning rate, batch size); each is recorded to
/// `NAME.jsonl` and rendered to `NAME.wav` with the built-in synth and the default mapping.
pub const RUNS: &[(&str, OptimizerKind, f64, usize)] = &[
    ("sgd_0.01", OptimizerKind::Sgd, 0.01, 20),
    ("sgd_0.1", OptimizerKind::Sgd, 0.1, 20),
    ("sgd_1.0", OptimizerKind::Sgd, 1.0, 20),
    ("sgd_1.0_bs_256", OptimizerKind::Sgd, 1.0, 256),
    ("adam_0.01", OptimizerKind::Adam, 0.01, 20),
];

pub fn run(args: &DemoArgs) -> Result<()> {
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("{}", args.out_dir.display()))?;
    let mapping = super::load_mapping(&EventOutputArgs::default())?;
    let render_opts = args.audio.options()?;
    let output = EventOutputArgs {
        audio_device: args.audio_device.clone(),
        no_audio: args.no_audio,
        quiet: true,
        no_reload: true,
        ..Default::default()
    };
    let mut play = output.output_settings()?.live.is_some() && sound_available(&mapping, &output)?;
    for (name, kind, lr, batch) in RUNS {
        let train_args = super::train::TrainArgs {
            optimizer: *kind,
            lr: *lr,
            batch_size: *batch,
            steps: args.steps,
            seed: args.seed,
            run: Some(name.to_string()),
            ..default_train_args()
        };
        let output = EventOutputArgs {
            record: Some(args.out_dir.join(format!("{name}.jsonl"))),
            quiet: true,
            no_audio: true,
            ..Default::default()
        };
        eprintln!("== {name}");
        let outcome = super::train::train(train_args.config()?, &output, false, None)?;
        eprint!("{}", outcome.summary);
        let recording = args.out_dir.join(format!("{name}.jsonl"));
        let wav = args.out_dir.join(format!("{name}.wav"));
        super::render::render_file(&recording, &mapping, &render_opts, &wav, true)?;
        eprintln!(
            "  recorded to {}, rendered to {}",
            recording.display(),
            wav.display()
        );
        if play && !stopped() {
            if let Some((_, what)) = LISTEN_FOR.iter().find(|(n, _)| n == name) {
                eprintln!("  playing; listen for {what}");
            }
            let replay = super::replay::ReplayArgs {
                step_ms: Some(render_opts.step_ms.to_string()),
                output: output.clone(),
                ..super::replay::ReplayArgs::new(recording)
            };
            if let Err(e) = super::replay::run(&replay) {
                eprintln!("warning: playback stopped: {e:#}");
                play = false;
            }
        }
        if stopped() {
            break;
        }
    }
    if !play {
        eprintln!(
            "the WAVs are in {}: play them with any audio player",
            args.out_dir.display()
        );
    }
    Ok(())
}

fn stopped() -> bool {
    super::STOP.load(std::sync::atomic::Ordering::Relaxed)
}

/// Whether the built-in synth can open an audio device (a note says why not).
fn sound_available(mapping: &sonograd::mapping::Mapping, output: &EventOutputArgs) -> Result<bool> {
    use sonograd::synth::live::{LiveError, SynthOutput};
    let Some(options) = output.output_settings()?.live else {
        return Ok(false);
    };
    match SynthOutput::open(mapping, &options) {
        Ok(synth) => {
            drop(synth);
            Ok(true)
        }
        Err(e @ LiveError::UnknownDevice { .. }) => Err(e.into()),
        Err(e) => {
            eprintln!("note: not playing the runs: {e}");
            Ok(false)
        }
    }
}

fn default_train_args() -> super::train::TrainArgs {
    use clap::Parser;
    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: super::train::TrainArgs,
    }
    Wrapper::parse_from(["sonograd"]).args
}
