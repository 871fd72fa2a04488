//! The arguments of `train` and `demo`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use sonograd_trainer::data::DataSpec;
use sonograd_trainer::model::{Activation, ModelKind, ModelOptions};
use sonograd_trainer::optim::{OptimizerConfig, OptimizerKind};
use sonograd_trainer::{DeviceChoice, Length, TrainConfig};

use crate::cli::{render::AudioArgs, EventOutputArgs};

#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    /// Model: mlp (the seed's 4-layer net) or cnn.
    #[arg(long, default_value = "mlp")]
    pub model: ModelKind,
    /// Hidden widths of the MLP, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "256,128,64")]
    pub hidden: Vec<usize>,
    /// Nonlinearity between the MLP's layers: relu, sigmoid or tanh.
    #[arg(long, default_value = "relu")]
    pub activation: Activation,
    /// Start every bias at this value (default: libtorch's uniform init).
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    pub init_bias: Option<f64>,
    /// Data: digits (28x28, 10 classes, stands in for MNIST), spirals, moons, blobs, xor, or idx:DIR.
    #[arg(long, default_value = "digits")]
    pub data: DataSpec,
    /// Optimizer: sgd, adam, adamw or rmsprop.
    #[arg(long, default_value = "sgd")]
    pub optimizer: OptimizerKind,
    /// Learning rate.
    #[arg(long, default_value_t = 0.1, allow_negative_numbers = true)]
    pub lr: f64,
    /// Momentum (SGD, RMSprop).
    #[arg(long, default_value_t = 0.0)]
    pub momentum: f64,
    /// Nesterov momentum (SGD; needs --momentum).
    #[arg(long)]
    pub nesterov: bool,
    /// Weight decay (default 0, or 0.01 for AdamW).
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Examples per step.
    #[arg(long, default_value_t = 20)]
    pub batch_size: usize,
    /// Number of steps.
    #[arg(long, default_value_t = 200, conflicts_with = "epochs")]
    pub steps: u64,
    /// Number of passes over the data (instead of --steps).
    #[arg(long)]
    pub epochs: Option<u32>,
    /// Seed of weights, data and shuffling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// cpu, cuda or auto.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Clip the total gradient norm to this value.
    #[arg(long, value_name = "MAX")]
    pub clip_grad_norm: Option<f64>,
    /// Emit weight norms and update/weight ratios every N steps.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub stats_every: u64,
    /// Evaluate on the held-out data every N steps (default: only at the end).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub eval_every: u64,
    /// Stop at the first NaN or Inf (default: report it and train on).
    #[arg(long)]
    pub halt_on_nonfinite: bool,
    /// Train without measuring anything: no statistics, no events (the baseline for overhead
    /// measurements). `--no-monitor` is its old name.
    #[arg(long, alias = "no-monitor")]
    pub unmeasured: bool,
    /// libtorch threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Use libtorch's optimizers instead of the fused ones (slower; for cross-checks).
    #[arg(long)]
    pub torch_optimizer: bool,
    /// Hold each step to --step-ms of wall time (the seed's lockstep; the trainer waits on a
    /// clock, never on the audio device).
    #[arg(long)]
    pub paced: bool,
    /// Also render the run to this WAV file with the built-in synth (after training).
    #[arg(long, value_name = "FILE")]
    pub wav: Option<PathBuf>,
    #[command(flatten)]
    pub audio: AudioArgs,
    /// Tag every event with this run name.
    #[arg(long, value_name = "NAME")]
    pub run: Option<String>,
    #[command(flatten)]
    pub output: EventOutputArgs,
}

impl TrainArgs {
    /// The validated training configuration.
    pub fn config(&self) -> Result<TrainConfig> {
        if self.nesterov && self.momentum <= 0.0 {
            anyhow::bail!("--nesterov needs --momentum greater than 0");
        }
        let mut optimizer = OptimizerConfig::new(self.optimizer, self.lr);
        optimizer.momentum = self.momentum;
        optimizer.nesterov = self.nesterov;
        if let Some(wd) = self.weight_decay {
            optimizer.weight_decay = wd;
        }
        Ok(TrainConfig {
            model: self.model,
            hidden: self.hidden.clone(),
            model_options: ModelOptions {
                activation: self.activation,
                init_bias: self.init_bias,
            },
            data: self.data.clone(),
            optimizer,
            batch_size: self.batch_size,
            length: match self.epochs {
                Some(e) => Length::Epochs(e),
                None => Length::Steps(self.steps),
            },
            seed: self.seed,
            device: self.device,
            clip_grad_norm: self.clip_grad_norm,
            stats_every: self.stats_every,
            eval_every: self.eval_every,
            halt_on_nonfinite: self.halt_on_nonfinite,
            torch_optimizer: self.torch_optimizer,
            threads: self.threads,
            run_tag: self.run.clone(),
        })
    }
}

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
    pub audio: AudioArgs,
    /// Only write the WAVs; do not play them (also: SONOGRAD_NO_AUDIO=1).
    #[arg(long)]
    pub no_audio: bool,
    /// Audio device to play on (see `sonograd devices`).
    #[arg(long, value_name = "DEVICE")]
    pub audio_device: Option<String>,
}
