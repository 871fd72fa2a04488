//! `sonograd train`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;

use sonograd::consume::{self, Consumers, EventConsumer};
use sonograd::diagnose::Detector;
use sonograd::dispatch::{Dispatcher, LiveReports};
use sonograd::event::EndReason;
use sonograd::mapping::Mapping;
use sonograd::print::{EventPrinter, PrintFormat};
use sonograd::progress::Progress;
use sonograd::queue::{event_queue, DEFAULT_CAPACITY};
use sonograd::record::Recorder;
use sonograd::source::listen::{Filtered, SenderFilter};
use sonograd::source::train::data::DataSpec;
use sonograd::source::train::model::{Activation, ModelKind, ModelOptions};
use sonograd::source::train::optim::{OptimizerConfig, OptimizerKind};
use sonograd::source::train::{DeviceChoice, Length, TrainConfig, Trainer};
use sonograd::summary::{RunSummary, SummaryCollector};
use sonograd::synth::pace::PacedSink;

use super::{EventOutputArgs, STOP};

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
    /// Train without any monitoring (the baseline for overhead measurements).
    #[arg(long)]
    pub no_monitor: bool,
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
    pub audio: super::render::AudioArgs,
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

/// Joins the consumer thread even when training unwinds, so recordings are flushed.
pub struct JoinOnDrop(Option<std::thread::JoinHandle<consume::ConsumerReport>>);

impl JoinOnDrop {
    /// Starts the consumer thread.
    pub fn spawn(rx: sonograd::queue::EventReceiver, consumers: Consumers) -> Self {
        JoinOnDrop(Some(consume::spawn(rx, consumers)))
    }

    /// Waits for the consumer thread to finish.
    pub fn join(mut self) -> consume::ConsumerReport {
        self.0
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for JoinOnDrop {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            let _ = h.join();
        }
    }
}

/// The event thread's consumers, and where the live synth reports what it did.
pub struct Pipeline {
    /// The consumers, behind the detector.
    pub consumers: Consumers,
    /// The live synth's reports, filled when the consumers finish.
    pub live: LiveReports,
    /// Whether the built-in synth plays on an audio device.
    pub playing: bool,
}

/// Consumers for the event thread from the output flags, behind the detector (the mapping's
/// `[diagnose]` thresholds; none with `--no-diagnose`); the summary is shared back.
pub fn consumers(
    output: &EventOutputArgs,
    mapping: Mapping,
    steps: u64,
    summary: &Arc<Mutex<RunSummary>>,
) -> Result<Pipeline> {
    consumers_filtered(output, mapping, steps, summary, None)
}

/// As [`consumers`], routing only the senders `filter` lets through (the recording keeps all).
pub fn consumers_filtered(
    output: &EventOutputArgs,
    mapping: Mapping,
    steps: u64,
    summary: &Arc<Mutex<RunSummary>>,
    filter: Option<SenderFilter>,
) -> Result<Pipeline> {
    let detector =
        (!output.no_diagnose && mapping.diagnose.enabled).then(|| Detector::new(mapping.diagnose));
    let mut list: Vec<Box<dyn EventConsumer>> = vec![Box::new(SummaryCollector(summary.clone()))];
    let settings = output.output_settings()?;
    let live = settings.live_reports.clone();
    let watch = output.mapping.is_some() && !output.no_reload;
    let path = output
        .mapping
        .clone()
        .unwrap_or_else(|| "config/default.toml".into());
    let dispatcher = Dispatcher::with_outputs(
        &path,
        mapping,
        output.monitor,
        watch,
        Box::new(std::io::stdout()),
        settings,
    )?;
    let playing = dispatcher.live_info().is_some();
    if let (Some(info), true) = (dispatcher.live_info(), output.verbose) {
        eprintln!(
            "audio: {} at {} Hz, buffer {} frames requested, {} granted",
            info.device,
            info.sample_rate,
            info.requested_frames,
            info.granted_frames
                .map_or_else(|| "size not reported".to_string(), |f| f.to_string())
        );
    }
    let dispatcher: Box<dyn EventConsumer> = Box::new(dispatcher);
    list.push(match filter {
        Some(filter) if !filter.is_all() => Box::new(Filtered::new(dispatcher, filter)),
        _ => dispatcher,
    });
    if let Some(path) = &output.record {
        list.push(Box::new(Recorder::create(path).context("--record")?));
    }
    if output.print || output.json {
        list.push(Box::new(EventPrinter::new(if output.json {
            PrintFormat::Json
        } else {
            PrintFormat::Text
        })));
    }
    if !output.quiet && std::io::stderr().is_terminal() {
        list.push(Box::new(Progress::new(steps)));
    }
    Ok(Pipeline {
        consumers: Consumers::new(list, detector),
        live,
        playing,
    })
}

/// What a finished `train` reports.
pub struct TrainOutcome {
    pub reason: EndReason,
    pub summary: RunSummary,
}

/// Trains with the given config and output flags; `paced_step_ms` holds each step to that
/// many milliseconds.
pub fn train(
    cfg: TrainConfig,
    output: &EventOutputArgs,
    no_monitor: bool,
    paced_step_ms: Option<f64>,
) -> Result<TrainOutcome> {
    // The mapping is validated before anything starts.
    let mapping = super::load_mapping(output)?;
    let mut trainer = Trainer::new(cfg)?;
    let started = Instant::now();
    if no_monitor {
        let reason = trainer.run(None, &STOP)?;
        if !output.quiet {
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "{} steps in {secs:.2} s ({:.0} steps/s), unmonitored",
                trainer.steps_done(),
                trainer.steps_done() as f64 / secs
            );
        }
        return Ok(TrainOutcome {
            reason,
            summary: RunSummary::default(),
        });
    }
    let summary = Arc::new(Mutex::new(RunSummary::default()));
    let (tx, rx, _stats) = event_queue(DEFAULT_CAPACITY);
    let consumers = consumers(output, mapping, trainer.planned_steps(), &summary)?;
    let live = consumers.live.clone();
    // A live run: the detector hears the clock and can say `stall`.
    let consumer = JoinOnDrop::spawn(rx, consumers.consumers.live());
    let mut tx = tx;
    let result = match paced_step_ms {
        Some(ms) => trainer.run(Some(&mut PacedSink::new(&mut tx, ms)), &STOP),
        None => trainer.run(Some(&mut tx), &STOP),
    };
    tx.close();
    let report = consumer.join();
    let reason = result?;
    for e in &report.errors {
        eprintln!("warning: {e}");
    }
    let mut summary = summary.lock().map(|s| s.clone()).unwrap_or_default();
    summary.recording = output.record.clone();
    if !output.quiet {
        let secs = started.elapsed().as_secs_f64();
        eprint!("{summary}");
        eprintln!(
            "  {} steps in {secs:.2} s ({:.0} steps/s)",
            trainer.steps_done(),
            trainer.steps_done() as f64 / secs
        );
        if let Some(path) = &output.record {
            eprintln!(
                "  recorded {} events to {}",
                report.events + report.diagnoses,
                path.display()
            );
        }
    }
    super::report_live(&live, output);
    Ok(TrainOutcome { reason, summary })
}

pub fn run(args: &TrainArgs) -> Result<EndReason> {
    let cfg = args.config()?;
    let opts = args.audio.options()?;
    let paced = args.paced.then_some(opts.step_ms);
    if args.paced && args.no_monitor {
        anyhow::bail!("--paced holds the monitored events to a clock: drop --no-monitor");
    }
    let Some(wav) = &args.wav else {
        return Ok(train(cfg, &args.output, args.no_monitor, paced)?.reason);
    };
    if args.no_monitor {
        anyhow::bail!("--wav needs the run's events: drop --no-monitor");
    }
    // Render from a recording: the one asked for, or a temporary one beside the WAV.
    let mut output = args.output.clone();
    let temporary = output.record.is_none();
    let recording = output
        .record
        .get_or_insert_with(|| wav.with_extension("events.jsonl"))
        .clone();
    // Render mode: the file is the sound, so nothing plays live.
    output.no_audio = true;
    let outcome = train(cfg, &output, false, paced);
    let mapping = super::load_mapping(&output)?;
    let rendered = super::render::render_file(&recording, &mapping, &opts, wav, output.quiet);
    if temporary {
        let _ = std::fs::remove_file(&recording);
    }
    let reason = outcome?.reason;
    rendered?;
    Ok(reason)
}
