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
}

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
            ..Default::default()
        };
        eprintln!("== {name}");
        let outcome = super::train::train(train_args.config()?, &output, false)?;
        eprint!("{}", outcome.summary);
        let recording = args.out_dir.join(format!("{name}.jsonl"));
        let wav = args.out_dir.join(format!("{name}.wav"));
        super::render::render_file(&recording, &mapping, &render_opts, &wav, true)?;
        eprintln!(
            "  recorded to {}, rendered to {}",
            recording.display(),
            wav.display()
        );
        if super::STOP.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
    }
    Ok(())
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
