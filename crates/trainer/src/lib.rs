//! The built-in trainer (`sonograd train`): model, data, optimizer, and the events each step
//! emits: per-layer gradient norms, total norm, loss and learning rate every step, weight norms
//! and update/weight ratios every `stats_every` steps, non-finite alarms when they happen.

pub mod data;
pub mod model;
pub mod optim;
pub mod steer;

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

use data::{DataError, DataSpec, Dataset};
use model::{Model, ModelError, ModelKind, ModelOptions};
use optim::{Hyper, LayerSums, OptimizerConfig, StepError, Stepper, Want};
use sonograd_event::{EndReason, Event, Layer, NonFiniteKind, Payload, Quantity, RunInfo};
use steer::{Steer, SteerCommand, Steering};

/// Where to train (`--device`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    /// The CPU.
    Cpu,
    /// The first CUDA device; an error when there is none.
    Cuda,
    /// CUDA when present, else the CPU.
    Auto,
}

impl FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda),
            "auto" => Ok(DeviceChoice::Auto),
            _ => Err(format!("unknown device `{s}`: expected cpu, cuda or auto")),
        }
    }
}

/// Whether libtorch sees a CUDA device (`--device cuda` needs one).
pub fn cuda_available() -> bool {
    tch::Cuda::is_available()
}

/// How long to train.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Length {
    /// A number of optimizer steps.
    Steps(u64),
    /// A number of passes over the training data.
    Epochs(u32),
}

/// Everything a training run is made of.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    /// Model kind.
    pub model: ModelKind,
    /// Hidden widths of the MLP.
    pub hidden: Vec<usize>,
    /// Activation and bias init of the model.
    pub model_options: ModelOptions,
    /// Data set.
    pub data: DataSpec,
    /// Optimizer and its hyper-parameters.
    pub optimizer: OptimizerConfig,
    /// Examples per step.
    pub batch_size: usize,
    /// Steps or epochs.
    pub length: Length,
    /// Seed of weights, data and shuffling.
    pub seed: u64,
    /// Device.
    pub device: DeviceChoice,
    /// Clip the total gradient norm to this value.
    pub clip_grad_norm: Option<f64>,
    /// Emit weight norms and update ratios every this many steps.
    pub stats_every: u64,
    /// Evaluate on the held-out data every this many steps (0: only at the end of the run).
    pub eval_every: u64,
    /// Stop at the first non-finite value.
    pub halt_on_nonfinite: bool,
    /// Use libtorch's optimizers even on the CPU (slower; for cross-checks).
    pub torch_optimizer: bool,
    /// Compute threads for libtorch.
    pub threads: usize,
    /// Optional run tag carried by every event.
    pub run_tag: Option<String>,
}

impl Default for TrainConfig {
    /// The seed's setting: 784-256-128-64-10 MLP, SGD lr 0.1, batch 20, 200 steps.
    fn default() -> Self {
        TrainConfig {
            model: ModelKind::Mlp,
            hidden: vec![256, 128, 64],
            model_options: ModelOptions::default(),
            data: DataSpec::Digits,
            optimizer: OptimizerConfig::new(optim::OptimizerKind::Sgd, 0.1),
            batch_size: 20,
            length: Length::Steps(200),
            seed: 0,
            device: DeviceChoice::Cpu,
            clip_grad_norm: None,
            stats_every: 10,
            eval_every: 0,
            halt_on_nonfinite: false,
            torch_optimizer: false,
            threads: 1,
            run_tag: None,
        }
    }
}

/// Why training could not start or go on.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// CUDA was asked for and is not there.
    #[error("--device cuda: CUDA is not available (no GPU, or this libtorch is CPU-only); use --device cpu or auto")]
    NoCuda,
    /// The data could not be loaded.
    #[error("data: {0}")]
    Data(#[from] DataError),
    /// The model does not fit the data.
    #[error("{0}")]
    Model(#[from] ModelError),
    /// The optimizer step failed.
    #[error("optimizer: {0}")]
    Step(#[from] StepError),
    /// A setting is out of range.
    #[error("{0}")]
    Invalid(String),
}

pub use sonograd_event::EventSink;

/// What one step reports back to the loop.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepOutcome {
    /// Whether a NaN or Inf appeared (only known when monitoring).
    pub non_finite: bool,
    /// Whether the step ended with an evaluation on the held-out data.
    pub evaluated: bool,
}

/// A model, its data and its optimizer, stepping one batch at a time.
pub struct Trainer {
    cfg: TrainConfig,
    data: Dataset,
    model: Model,
    stepper: Box<dyn Stepper>,
    layers: Vec<Layer>,
    device: Device,
    rng: ChaCha8Rng,
    epoch_order: Tensor,
    position: usize,
    batch: usize,
    step: u64,
    epoch: u32,
    run_tag: Option<Arc<str>>,
    /// The hyper-parameters now (controls change them), and the run's own learning rate
    /// and its scale.
    hyper: Hyper,
    base_lr: f64,
    lr_scale: f64,
    paused: bool,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Trainer {
    /// Loads the data, builds the model and the optimizer.
    pub fn new(cfg: TrainConfig) -> Result<Trainer, TrainError> {
        if cfg.batch_size == 0 {
            return Err(TrainError::Invalid(
                "--batch-size must be at least 1".into(),
            ));
        }
        if cfg.stats_every == 0 {
            return Err(TrainError::Invalid(
                "--stats-every must be at least 1".into(),
            ));
        }
        if !(cfg.optimizer.lr.is_finite() && cfg.optimizer.lr > 0.0) {
            return Err(TrainError::Invalid(format!(
                "--lr must be a positive number, got {}",
                cfg.optimizer.lr
            )));
        }
        if let Some(c) = cfg.clip_grad_norm {
            if !(c.is_finite() && c > 0.0) {
                return Err(TrainError::Invalid(format!(
                    "--clip-grad-norm must be a positive number, got {c}"
                )));
            }
        }
        let device = match cfg.device {
            DeviceChoice::Cpu => Device::Cpu,
            DeviceChoice::Cuda if tch::Cuda::is_available() => Device::Cuda(0),
            DeviceChoice::Cuda => return Err(TrainError::NoCuda),
            DeviceChoice::Auto => Device::cuda_if_available(),
        };
        tch::set_num_threads(cfg.threads.max(1) as i32);
        let data = Dataset::load(&cfg.data, cfg.seed)?;
        let data = Dataset {
            train_x: data.train_x.to_device(device),
            train_y: data.train_y.to_device(device),
            test_x: data.test_x.to_device(device),
            test_y: data.test_y.to_device(device),
            ..data
        };
        // The weights come from libtorch's global generator: seed it and draw them under a
        // lock, so that trainers built on several threads at once are still reproducible.
        static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let model = {
            let _guard = INIT.lock().unwrap_or_else(|e| e.into_inner());
            tch::manual_seed(cfg.seed as i64);
            Model::build(
                cfg.model,
                &cfg.hidden,
                data.features(),
                data.classes,
                data.image,
                device,
                cfg.model_options,
            )?
        };
        let stepper = optim::stepper(
            &cfg.optimizer,
            &model.vars,
            &model.layers,
            cfg.torch_optimizer,
        )?;
        let layers = model
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| Layer::new(l.name.as_str(), i as u32))
            .collect();
        let batch = cfg.batch_size.min(data.len());
        let run_tag = cfg.run_tag.as_deref().map(Arc::from);
        let hyper = Hyper {
            lr: cfg.optimizer.lr,
            momentum: match cfg.optimizer.kind {
                optim::OptimizerKind::Adam | optim::OptimizerKind::AdamW => cfg.optimizer.beta1,
                _ => cfg.optimizer.momentum,
            },
            weight_decay: cfg.optimizer.weight_decay,
        };
        let mut trainer = Trainer {
            hyper,
            base_lr: cfg.optimizer.lr,
            lr_scale: 1.0,
            paused: false,
            rng: ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_add(0x5_4aff1e)),
            epoch_order: Tensor::new(),
            position: 0,
            batch,
            step: 0,
            epoch: 0,
            cfg,
            data,
            model,
            stepper,
            layers,
            device,
            run_tag,
        };
        trainer.shuffle();
        Ok(trainer)
    }

    /// Number of steps the configured length amounts to.
    pub fn planned_steps(&self) -> u64 {
        match self.cfg.length {
            Length::Steps(n) => n,
            Length::Epochs(e) => u64::from(e) * self.steps_per_epoch(),
        }
    }

    fn steps_per_epoch(&self) -> u64 {
        (self.data.len() / self.batch) as u64
    }

    /// The run's metadata, as sent in the `run_start` event.
    pub fn run_info(&self) -> RunInfo {
        RunInfo {
            model: self.model.description.clone(),
            optimizer: self.cfg.optimizer.to_string(),
            lr: self.cfg.optimizer.lr,
            batch_size: self.batch as u32,
            layers: self.model.layer_names(),
            dataset: self.data.name.clone(),
            steps: Some(self.planned_steps()),
            seed: Some(self.cfg.seed),
            device: match self.device {
                Device::Cuda(i) => format!("cuda:{i}"),
                _ => "cpu".into(),
            },
            control_port: None,
        }
    }

    /// Steps taken so far.
    pub fn steps_done(&self) -> u64 {
        self.step
    }

    fn shuffle(&mut self) {
        let mut order: Vec<i64> = (0..self.data.len() as i64).collect();
        order.shuffle(&mut self.rng);
        self.epoch_order = Tensor::from_slice(&order).to_device(self.device);
        self.position = 0;
    }

    fn event(&self, time: f64, payload: Payload) -> Event {
        let mut e = Event::new(self.step, self.epoch, time, payload);
        e.run = self.run_tag.clone();
        e
    }

    /// Trains one batch. With a sink, gathers the statistics and emits the step's events;
    /// without one (`--unmeasured`) it only trains.
    pub fn step(
        &mut self,
        mut sink: Option<&mut dyn EventSink>,
    ) -> Result<StepOutcome, TrainError> {
        // Gather the batch's examples in the epoch's shuffled order.
        let index = self
            .epoch_order
            .narrow(0, self.position as i64, self.batch as i64);
        let x = self.data.train_x.index_select(0, &index);
        let y = self.data.train_y.index_select(0, &index);
        let loss = self.model.forward(&x).cross_entropy_for_logits(&y);
        loss.backward();
        let want = Want {
            grads: sink.is_some(),
            weights: sink.is_some() && self.step.is_multiple_of(self.cfg.stats_every),
        };
        let sums = self.stepper.step(want, self.cfg.clip_grad_norm)?;
        let mut non_finite = false;
        if let Some(sink) = sink.as_deref_mut() {
            let loss_value = loss.double_value(&[]);
            let sums = sums.to_vec();
            non_finite = self.emit_step(sink, loss_value, &sums, want.weights);
        }
        self.position += self.batch;

        if self.position + self.batch > self.data.len() {
            if let Some(sink) = sink.as_deref_mut() {
                sink.emit(self.event(now(), Payload::EpochEnd));
            }
            self.epoch += 1;
            self.shuffle();
        }
        let evaluated =
            self.cfg.eval_every > 0 && (self.step + 1).is_multiple_of(self.cfg.eval_every);
        if let (true, Some(sink)) = (evaluated, sink) {
            self.emit_eval(sink, now());
        }
        self.step += 1;
        Ok(StepOutcome {
            non_finite,
            evaluated,
        })
    }

    fn emit_step(
        &self,
        sink: &mut dyn EventSink,
        loss: f64,
        sums: &[LayerSums],
        weights: bool,
    ) -> bool {
        let t = now();
        let mut non_finite = false;
        let mut alarm = |sink: &mut dyn EventSink, layer: Option<&Layer>, quantity, value: f64| {
            if !value.is_finite() {
                non_finite = true;
                let state = if value.is_nan() {
                    NonFiniteKind::Nan
                } else {
                    NonFiniteKind::Inf
                };
                sink.emit(self.event(
                    t,
                    Payload::NonFinite {
                        layer: layer.cloned(),
                        quantity,
                        state,
                    },
                ));
            }
        };
        sink.emit(self.event(
            t,
            Payload::Lr {
                value: self.hyper.lr,
            },
        ));
        let mut total = 0.0;
        for (layer, s) in self.layers.iter().zip(sums) {
            total += s.grad_sq;
            sink.emit(self.event(
                t,
                Payload::GradNorm {
                    layer: layer.clone(),
                    value: s.grad_sq.sqrt(),
                },
            ));
            alarm(sink, Some(layer), Quantity::Grad, s.grad_sq);
        }
        sink.emit(self.event(
            t,
            Payload::TotalNorm {
                value: total.sqrt(),
            },
        ));
        sink.emit(self.event(t, Payload::Loss { value: loss }));
        alarm(sink, None, Quantity::Loss, loss);
        if weights {
            for (layer, s) in self.layers.iter().zip(sums) {
                let weight = s.weight_sq.sqrt();
                let ratio = if s.update_sq == 0.0 {
                    0.0
                } else {
                    s.update_sq.sqrt() / weight
                };
                sink.emit(self.event(
                    t,
                    Payload::WeightNorm {
                        layer: layer.clone(),
                        value: weight,
                    },
                ));
                // Right after its value, where a reader would make it (`non_finite` events).
                alarm(sink, Some(layer), Quantity::Weight, s.weight_sq);
                sink.emit(self.event(
                    t,
                    Payload::UpdateRatio {
                        layer: layer.clone(),
                        value: ratio,
                    },
                ));
            }
        }
        non_finite
    }

    /// Held-out accuracy and loss.
    pub fn evaluate(&self) -> (f64, f64) {
        tch::no_grad(|| {
            let logits = self.model.forward(&self.data.test_x);
            let loss = logits
                .cross_entropy_for_logits(&self.data.test_y)
                .double_value(&[]);
            let accuracy = logits
                .argmax(-1, false)
                .eq_tensor(&self.data.test_y)
                .to_kind(Kind::Float)
                .mean(Kind::Float);
            (accuracy.double_value(&[]), loss)
        })
    }

    fn emit_eval(&self, sink: &mut dyn EventSink, t: f64) {
        let (accuracy, loss) = self.evaluate();
        sink.emit(self.event(
            t,
            Payload::Eval {
                name: "accuracy".into(),
                value: accuracy,
            },
        ));
        sink.emit(self.event(
            t,
            Payload::Eval {
                name: "val_loss".into(),
                value: loss,
            },
        ));
    }

    /// Runs the whole configured length (or until `stop` is set): `run_start`, every step's
    /// events, a final evaluation and `run_end`.
    pub fn run(
        &mut self,
        sink: Option<&mut dyn EventSink>,
        stop: &AtomicBool,
    ) -> Result<EndReason, TrainError> {
        self.run_steered(sink, stop, None)
    }

    /// The learning rate now.
    pub fn lr(&self) -> f64 {
        self.hyper.lr
    }

    /// Whether a control paused the run.
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// Carries out one command between steps and writes its `control` event; `true` when it
    /// asks the run to stop.
    pub fn apply(
        &mut self,
        cmd: SteerCommand,
        sink: Option<&mut dyn EventSink>,
        failed: &mut dyn FnMut(String),
    ) -> bool {
        let mut stop = false;
        let mut hyper = self.hyper;
        match &cmd.steer {
            Steer::Lr(v) if v.is_finite() && *v > 0.0 => {
                self.base_lr = *v;
                self.lr_scale = 1.0;
            }
            Steer::LrScale(v) if v.is_finite() && *v >= 0.0 => self.lr_scale = *v,
            Steer::Momentum(v) if v.is_finite() && (0.0..1.0).contains(v) => hyper.momentum = *v,
            Steer::WeightDecay(v) if v.is_finite() && *v >= 0.0 => hyper.weight_decay = *v,
            Steer::Pause(p) => self.paused = *p,
            Steer::Stop => stop = true,
            Steer::Checkpoint(file) => {
                let path = std::path::PathBuf::from(file.replace("{step}", &self.step.to_string()));
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    let _ = std::fs::create_dir_all(dir);
                }
                if let Err(e) = self.model.vars.save(&path) {
                    failed(format!("checkpoint {}: {e}", path.display()));
                }
            }
            Steer::Note => {}
            other => failed(format!(
                "control {}: {other:?} is out of range",
                cmd.control
            )),
        }
        hyper.lr = self.base_lr * self.lr_scale;
        if hyper != self.hyper {
            self.hyper = hyper;
            self.stepper.set_hyper(hyper);
        }
        if let Some(sink) = sink {
            sink.emit(self.event(
                now(),
                Payload::Control {
                    control: cmd.control,
                    source: cmd.source,
                    target: cmd.target,
                    value: cmd.value,
                },
            ));
        }
        stop
    }

    /// [`Trainer::run`] with commands from `steering` carried out before each step: while
    /// paused, the trainer waits on them (and on `stop`); a `stop` command ends the run
    /// cleanly with reason `stopped`.
    pub fn run_steered(
        &mut self,
        mut sink: Option<&mut dyn EventSink>,
        stop: &AtomicBool,
        mut steering: Option<&mut dyn Steering>,
    ) -> Result<EndReason, TrainError> {
        if self.cfg.halt_on_nonfinite && sink.is_none() {
            return Err(TrainError::Invalid(
                "--halt-on-nonfinite needs monitoring (drop --unmeasured)".into(),
            ));
        }
        if let Some(sink) = sink.as_mut() {
            sink.emit(self.event(
                now(),
                Payload::RunStart {
                    info: Box::new(self.run_info()),
                },
            ));
        }
        let planned = self.planned_steps();
        let mut reason = EndReason::Completed;
        let mut last_evaluated = false;
        while self.step < planned {
            if stop.load(Ordering::Relaxed) {
                reason = EndReason::Interrupted;
                break;
            }
            if let Some(st) = steering.as_deref_mut() {
                let mut stopped = false;
                loop {
                    let wait = self.paused.then_some(std::time::Duration::from_millis(10));
                    match st.next(wait) {
                        Some(cmd) => {
                            let mut failed = |what: String| st.failed(what);
                            let sink = sink.as_mut().map(|s| &mut **s as &mut dyn EventSink);
                            stopped |= self.apply(cmd, sink, &mut failed);
                        }
                        None if !self.paused => break,
                        None => {}
                    }
                    if stopped || stop.load(Ordering::Relaxed) {
                        break;
                    }
                }
                if stopped {
                    reason = EndReason::Stopped;
                    break;
                }
                if stop.load(Ordering::Relaxed) {
                    continue;
                }
            }
            let outcome = match sink {
                Some(ref mut s) => self.step(Some(&mut **s))?,
                None => self.step(None)?,
            };
            last_evaluated = outcome.evaluated;
            if outcome.non_finite && self.cfg.halt_on_nonfinite {
                reason = EndReason::NonFinite;
                break;
            }
        }
        // The closing events belong to the last step taken.
        self.step = self.step.saturating_sub(1);
        if let Some(sink) = sink {
            let t = now();
            if !last_evaluated {
                self.emit_eval(sink, t);
            }
            let coalesced = sink.coalesced();
            sink.emit(self.event(t, Payload::RunEnd { reason, coalesced }));
        }
        self.step += 1;
        Ok(reason)
    }
}
