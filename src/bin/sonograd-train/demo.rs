//! `sonograd demo`: the seed's four settings (and Adam), recorded side by side.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;

use sonograd_trainer::optim::OptimizerKind;

use crate::args::{DemoArgs, TrainArgs};
use crate::cli::{load_mapping, render, replay, EventOutputArgs, STOP};

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
    let mapping = load_mapping(&EventOutputArgs::default())?;
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
        let train_args = TrainArgs {
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
        let outcome = crate::train::train(train_args.config()?, &output, false, None)?;
        eprint!("{}", outcome.summary);
        let recording = args.out_dir.join(format!("{name}.jsonl"));
        let wav = args.out_dir.join(format!("{name}.wav"));
        render::render_input(
            &sonograd::source::replay_paced::ReplayInput::JsonLines(recording.clone()),
            &mapping,
            &render_opts,
            Some(&wav),
            Default::default(),
            true,
        )?;
        eprintln!(
            "  recorded to {}, rendered to {}",
            recording.display(),
            wav.display()
        );
        if play && !stopped() {
            if let Some((_, what)) = LISTEN_FOR.iter().find(|(n, _)| n == name) {
                eprintln!("  playing; listen for {what}");
            }
            let replay = replay::ReplayArgs {
                step_ms: Some(render_opts.step_ms.to_string()),
                output: output.clone(),
                ..replay_args(recording)
            };
            if let Err(e) = replay::run(&replay) {
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
    STOP.load(std::sync::atomic::Ordering::Relaxed)
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

/// `train`'s flags at their defaults, as if none were given.
fn default_train_args() -> TrainArgs {
    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: TrainArgs,
    }
    Wrapper::parse_from(["sonograd"]).args
}

/// Replays `file` with every other flag at its default.
fn replay_args(file: PathBuf) -> replay::ReplayArgs {
    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: replay::ReplayArgs,
    }
    replay::ReplayArgs {
        file,
        ..Wrapper::parse_from(["sonograd", "-"]).args
    }
}
