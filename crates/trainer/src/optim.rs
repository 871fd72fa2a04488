//! Optimizers that update the weights and gather gradient statistics in the same pass.
//!
//! On the CPU the update runs in Rust over the tensors' memory: one read of every gradient
//! gives the step, the per-layer squared norms (in f64, so a finite f32 gradient never
//! overflows into a false Inf) and the zeroed gradient for the next step. Monitoring adds a
//! few vector adds to a pass that is memory-bound anyway. Elsewhere (CUDA) libtorch's own
//! optimizers run and the statistics cost one fused reduction and one copy to the host.

use std::fmt;
use std::str::FromStr;

use tch::nn::{self, OptimizerConfig as _};
use tch::{Device, Kind, Tensor};

use super::model::LayerParams;

/// Which optimizer (`--optimizer`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptimizerKind {
    /// Stochastic gradient descent, with optional momentum, Nesterov and weight decay.
    Sgd,
    /// Adam (weight decay as L2 penalty on the gradient).
    Adam,
    /// AdamW (decoupled weight decay).
    AdamW,
    /// RMSprop, with optional momentum.
    RmsProp,
}

impl FromStr for OptimizerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "sgd" => Ok(OptimizerKind::Sgd),
            "adam" => Ok(OptimizerKind::Adam),
            "adamw" => Ok(OptimizerKind::AdamW),
            "rmsprop" => Ok(OptimizerKind::RmsProp),
            _ => Err(format!(
                "unknown optimizer `{s}`: expected sgd, adam, adamw or rmsprop"
            )),
        }
    }
}

/// Optimizer hyper-parameters; defaults follow PyTorch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OptimizerConfig {
    /// Which optimizer.
    pub kind: OptimizerKind,
    /// Learning rate.
    pub lr: f64,
    /// Momentum (SGD, RMSprop).
    pub momentum: f64,
    /// Dampening of the momentum (SGD).
    pub dampening: f64,
    /// Nesterov momentum (SGD).
    pub nesterov: bool,
    /// Weight decay (L2 for SGD/Adam/RMSprop, decoupled for AdamW).
    pub weight_decay: f64,
    /// Adam's first-moment decay.
    pub beta1: f64,
    /// Adam's second-moment decay.
    pub beta2: f64,
    /// Denominator guard (Adam, RMSprop).
    pub eps: f64,
    /// RMSprop's smoothing constant.
    pub alpha: f64,
}

impl OptimizerConfig {
    /// PyTorch's defaults for `kind` at learning rate `lr`.
    pub fn new(kind: OptimizerKind, lr: f64) -> Self {
        OptimizerConfig {
            kind,
            lr,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: if kind == OptimizerKind::AdamW {
                0.01
            } else {
                0.0
            },
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            alpha: 0.99,
        }
    }
}

impl fmt::Display for OptimizerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            OptimizerKind::Sgd => {
                write!(f, "sgd")?;
                if self.momentum != 0.0 {
                    write!(f, " momentum={}", self.momentum)?;
                }
                if self.nesterov {
                    write!(f, " nesterov")?;
                }
            }
            OptimizerKind::Adam => write!(f, "adam betas=({}, {})", self.beta1, self.beta2)?,
            OptimizerKind::AdamW => write!(f, "adamw betas=({}, {})", self.beta1, self.beta2)?,
            OptimizerKind::RmsProp => {
                write!(f, "rmsprop alpha={}", self.alpha)?;
                if self.momentum != 0.0 {
                    write!(f, " momentum={}", self.momentum)?;
                }
            }
        }
        if self.weight_decay != 0.0 {
            write!(f, " weight_decay={}", self.weight_decay)?;
        }
        Ok(())
    }
}

/// What statistics a step should gather.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Want {
    /// Squared gradient norms per layer.
    pub grads: bool,
    /// Squared weight and update norms per layer.
    pub weights: bool,
}

/// Squared L2 norms of one layer for one step, summed over its parameters.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LayerSums {
    /// Σ g² of the gradient (before clipping).
    pub grad_sq: f64,
    /// Σ w² of the weights after the update.
    pub weight_sq: f64,
    /// Σ Δ² of the update.
    pub update_sq: f64,
}

impl std::ops::AddAssign for LayerSums {
    fn add_assign(&mut self, o: LayerSums) {
        self.grad_sq += o.grad_sq;
        self.weight_sq += o.weight_sq;
        self.update_sq += o.update_sq;
    }
}

/// Why an optimizer step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// A gradient is missing (no backward pass ran through that parameter).
    #[error("layer {0}: a parameter has no gradient (is it used in the forward pass?)")]
    NoGradient(String),
    /// libtorch reported an error.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

/// Applies one optimizer step to the model's parameters (whose gradients are populated),
/// zeroes the gradients and returns the per-layer statistics asked for.
pub trait Stepper {
    /// One step. `clip` is the maximum total gradient norm, if clipping is on.
    fn step(&mut self, want: Want, clip: Option<f64>) -> Result<&[LayerSums], StepError>;
    /// Changes the hyper-parameters from the next step on (a person at the controls).
    /// Momentum is Adam's beta1; plain SGD (built without momentum) keeps none.
    fn set_hyper(&mut self, hyper: Hyper);
}

/// The hyper-parameters a run can change while it trains.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hyper {
    /// Learning rate.
    pub lr: f64,
    /// Momentum (SGD, RMSprop) or beta1 (Adam).
    pub momentum: f64,
    /// Weight decay.
    pub weight_decay: f64,
}

/// Builds the stepper for a model's layers: the fused Rust one on the CPU (unless
/// `force_torch`), libtorch's otherwise.
pub fn stepper(
    cfg: &OptimizerConfig,
    vars: &nn::VarStore,
    layers: &[LayerParams],
    force_torch: bool,
) -> Result<Box<dyn Stepper>, StepError> {
    if vars.device() == Device::Cpu && !force_torch {
        let slots = layers
            .iter()
            .enumerate()
            .flat_map(|(i, l)| {
                l.params
                    .iter()
                    .map(move |p| (i, l.name.clone(), p.shallow_clone()))
            })
            .collect::<Vec<_>>();
        let n_layers = layers.len();
        let c = *cfg;
        Ok(match cfg.kind {
            OptimizerKind::Sgd if cfg.momentum == 0.0 => Box::new(Fused::new(
                PlainSgd {
                    lr: c.lr as f32,
                    wd: c.weight_decay as f32,
                },
                slots,
                n_layers,
            )),
            OptimizerKind::Sgd => Box::new(Fused::new(
                MomentumSgd {
                    lr: c.lr as f32,
                    wd: c.weight_decay as f32,
                    momentum: c.momentum as f32,
                    dampening: c.dampening as f32,
                    nesterov: c.nesterov,
                    first: true,
                },
                slots,
                n_layers,
            )),
            OptimizerKind::Adam | OptimizerKind::AdamW => Box::new(Fused::new(
                Adam {
                    cfg: c,
                    decoupled: c.kind == OptimizerKind::AdamW,
                    t: 0,
                    step_size: 0.0,
                    bc2_sqrt: 1.0,
                },
                slots,
                n_layers,
            )),
            OptimizerKind::RmsProp => Box::new(Fused::new(
                RmsProp {
                    lr: c.lr as f32,
                    wd: c.weight_decay as f32,
                    alpha: c.alpha as f32,
                    eps: c.eps as f32,
                    momentum: c.momentum as f32,
                },
                slots,
                n_layers,
            )),
        })
    } else {
        TorchStepper::new(cfg, vars, layers).map(|s| Box::new(s) as Box<dyn Stepper>)
    }
}

/// One element's update rule; `State` is what the optimizer keeps per element.
trait Rule {
    type State: Copy + Default;
    /// Called once before each step's pass.
    fn begin_step(&mut self) {}
    /// Called once after each step's pass.
    fn end_step(&mut self) {}
    /// The change to apply to weight `p` given gradient `g`.
    fn delta(&self, p: f32, g: f32, s: &mut Self::State) -> f32;
    /// Takes new hyper-parameters.
    fn set(&mut self, h: Hyper);
    /// `Some(c)` when the change is exactly `c * g` (plain SGD without weight decay): then
    /// the update's norm follows from the gradient's, with no pass of its own.
    fn gradient_multiple(&self) -> Option<f32> {
        None
    }
}

struct PlainSgd {
    lr: f32,
    wd: f32,
}

impl Rule for PlainSgd {
    type State = ();
    fn set(&mut self, h: Hyper) {
        self.lr = h.lr as f32;
        self.wd = h.weight_decay as f32;
    }
    fn gradient_multiple(&self) -> Option<f32> {
        (self.wd == 0.0).then_some(-self.lr)
    }
    #[inline(always)]
    fn delta(&self, p: f32, g: f32, _: &mut ()) -> f32 {
        -self.lr * (g + self.wd * p)
    }
}

struct MomentumSgd {
    lr: f32,
    wd: f32,
    momentum: f32,
    dampening: f32,
    nesterov: bool,
    first: bool,
}

impl Rule for MomentumSgd {
    type State = f32;
    fn set(&mut self, h: Hyper) {
        self.lr = h.lr as f32;
        self.wd = h.weight_decay as f32;
        self.momentum = h.momentum as f32;
    }
    fn end_step(&mut self) {
        self.first = false;
    }
    #[inline(always)]
    fn delta(&self, p: f32, g: f32, buf: &mut f32) -> f32 {
        let d = g + self.wd * p;
        *buf = if self.first {
            d
        } else {
            self.momentum * *buf + (1.0 - self.dampening) * d
        };
        let d = if self.nesterov {
            d + self.momentum * *buf
        } else {
            *buf
        };
        -self.lr * d
    }
}

struct Adam {
    cfg: OptimizerConfig,
    decoupled: bool,
    t: i32,
    step_size: f32,
    bc2_sqrt: f32,
}

impl Rule for Adam {
    type State = [f32; 2];
    fn set(&mut self, h: Hyper) {
        self.cfg.lr = h.lr;
        self.cfg.weight_decay = h.weight_decay;
        self.cfg.beta1 = h.momentum;
    }
    fn begin_step(&mut self) {
        self.t += 1;
        let bc1 = 1.0 - self.cfg.beta1.powi(self.t);
        let bc2 = 1.0 - self.cfg.beta2.powi(self.t);
        self.step_size = (self.cfg.lr / bc1) as f32;
        self.bc2_sqrt = bc2.sqrt() as f32;
    }
    #[inline(always)]
    fn delta(&self, p: f32, g: f32, s: &mut [f32; 2]) -> f32 {
        let (b1, b2) = (self.cfg.beta1 as f32, self.cfg.beta2 as f32);
        let wd = self.cfg.weight_decay as f32;
        let lr = self.cfg.lr as f32;
        let (g, decay) = if self.decoupled {
            (g, -lr * wd * p)
        } else {
            (g + wd * p, 0.0)
        };
        s[0] = b1 * s[0] + (1.0 - b1) * g;
        s[1] = b2 * s[1] + (1.0 - b2) * g * g;
        let denom = s[1].sqrt() / self.bc2_sqrt + self.cfg.eps as f32;
        decay - self.step_size * s[0] / denom
    }
}

struct RmsProp {
    lr: f32,
    wd: f32,
    alpha: f32,
    eps: f32,
    momentum: f32,
}

impl Rule for RmsProp {
    type State = [f32; 2];
    fn set(&mut self, h: Hyper) {
        self.lr = h.lr as f32;
        self.wd = h.weight_decay as f32;
        self.momentum = h.momentum as f32;
    }
    #[inline(always)]
    fn delta(&self, p: f32, g: f32, s: &mut [f32; 2]) -> f32 {
        let g = g + self.wd * p;
        s[0] = self.alpha * s[0] + (1.0 - self.alpha) * g * g;
        let step = g / (s[0].sqrt() + self.eps);
        if self.momentum > 0.0 {
            s[1] = self.momentum * s[1] + step;
            -self.lr * s[1]
        } else {
            -self.lr * step
        }
    }
}

/// A parameter tensor the fused stepper updates.
struct Slot<S> {
    layer: usize,
    layer_name: String,
    param: Tensor,
    numel: usize,
    state: Vec<S>,
    /// The weights before the update, kept on steps that report update ratios.
    scratch: Vec<f32>,
}

/// The CPU stepper: one Rust pass per parameter does update, statistics and zeroing.
struct Fused<R: Rule> {
    rule: R,
    slots: Vec<Slot<R::State>>,
    sums: Vec<LayerSums>,
}

impl<R: Rule> Fused<R> {
    fn new(rule: R, params: Vec<(usize, String, Tensor)>, n_layers: usize) -> Self {
        let slots = params
            .into_iter()
            .map(|(layer, layer_name, param)| {
                let numel = param.numel();
                Slot {
                    layer,
                    layer_name,
                    param,
                    numel,
                    state: vec![R::State::default(); numel],
                    scratch: Vec::new(),
                }
            })
            .collect();
        Fused {
            rule,
            slots,
            sums: vec![LayerSums::default(); n_layers],
        }
    }
}

/// Views a CPU f32 tensor's memory as a slice, after checking that this is sound.
///
/// # Safety
/// The caller must not let libtorch touch the tensor while the slice lives, nor make two
/// slices of one tensor.
// A `Tensor` handle is shared (`&`) while its storage is mutable memory owned by libtorch;
// handing out `&mut` from `&` is the point here, guarded by the contract above.
#[allow(clippy::mut_from_ref)]
unsafe fn as_slice(t: &Tensor, numel: usize) -> Option<&mut [f32]> {
    let ok =
        t.defined() && t.kind() == Kind::Float && t.device() == Device::Cpu && t.is_contiguous();
    if !ok || t.numel() != numel {
        return None;
    }
    // SAFETY: the tensor is a defined, contiguous CPU f32 tensor of `numel` elements.
    Some(unsafe { std::slice::from_raw_parts_mut(t.data_ptr() as *mut f32, numel) })
}

impl<R: Rule> Stepper for Fused<R> {
    fn set_hyper(&mut self, hyper: Hyper) {
        self.rule.set(hyper);
    }

    fn step(&mut self, want: Want, clip: Option<f64>) -> Result<&[LayerSums], StepError> {
        self.sums.iter_mut().for_each(|s| *s = LayerSums::default());
        let grads: Vec<Tensor> = self.slots.iter().map(|s| s.param.grad()).collect();
        let mut scale = 1.0f32;
        if want.grads || clip.is_some() {
            // A read-only pass over gradients that backward just wrote (still in cache);
            // clipping needs the total norm before any weight moves anyway.
            let mut total = 0.0;
            for (slot, grad) in self.slots.iter().zip(&grads) {
                // SAFETY: no libtorch call runs while the slice lives.
                let g = unsafe { as_slice(grad, slot.numel) }
                    .ok_or_else(|| StepError::NoGradient(slot.layer_name.clone()))?;
                let sq = sum_squares(g);
                self.sums[slot.layer].grad_sq += sq;
                total += sq;
            }
            if let Some(max_norm) = clip {
                let coef = max_norm / (total.sqrt() + 1e-6);
                if coef < 1.0 {
                    scale = coef as f32;
                }
            }
        }
        self.rule.begin_step();
        for (slot, grad) in self.slots.iter_mut().zip(&grads) {
            // SAFETY: parameter and gradient are distinct tensors; no libtorch call runs
            // while the slices live.
            let g = unsafe { as_slice(grad, slot.numel) }
                .ok_or_else(|| StepError::NoGradient(slot.layer_name.clone()))?;
            let p = unsafe { as_slice(&slot.param, slot.numel) }
                .ok_or_else(|| StepError::NoGradient(slot.layer_name.clone()))?;
            let s = &mut slot.state[..];
            if want.weights {
                let sums = &mut self.sums[slot.layer];
                if let Some(c) = self.rule.gradient_multiple() {
                    let grad_sq = sum_squares(g);
                    update(&self.rule, p, g, s, scale);
                    sums.weight_sq += sum_squares(p);
                    sums.update_sq += f64::from(c * scale).powi(2) * grad_sq;
                } else {
                    let (w, u) = update_with_sums(&self.rule, p, g, s, scale, &mut slot.scratch);
                    sums.weight_sq += w;
                    sums.update_sq += u;
                }
            } else {
                update(&self.rule, p, g, s, scale);
            }
        }
        self.rule.end_step();
        Ok(&self.sums)
    }
}

const LANES: usize = 16;

/// Σ x² of an f32 slice, exact in meaning: NaN when an element is NaN, +Inf when an element
/// is ±Inf, and finite (computed again in f64) when only the f32 sum overflowed, or when it
/// is so small that squares below f32's normal range (elements under about 1.1e-19: a
/// vanishing gradient) may weigh in it.
pub fn sum_squares(x: &[f32]) -> f64 {
    let fast = f64::from(sum_squares_f32(x));
    if fast.is_finite() && !lost_below_normal(fast, x.len()) {
        return fast;
    }
    // Rare: something is NaN or Inf, the f32 sum overflowed, or it is tiny. f64 tells.
    let mut acc = 0.0f64;
    for &v in x {
        acc += f64::from(v) * f64::from(v);
    }
    acc
}

/// Whether an f32 sum of `n` squares this small may have lost more than 1e-7 of itself to
/// squares below `f32::MIN_POSITIVE` (each under 1.2e-38).
fn lost_below_normal(sum: f64, n: usize) -> bool {
    sum < n as f64 * 1.2e-31
}

#[inline(always)]
fn sum_squares_lanes(x: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for k in 0..LANES {
            acc[k] += c[k] * c[k];
        }
    }
    acc.iter().sum::<f32>() + tail.iter().map(|v| v * v).sum::<f32>()
}

fn sum_squares_f32(x: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        unsafe fn avx2(x: &[f32]) -> f32 {
            sum_squares_lanes(x)
        }
        // SAFETY: the CPU has AVX2.
        return unsafe { avx2(x) };
    }
    sum_squares_lanes(x)
}

/// Updates `p` by the rule with gradient `g * scale` and zeroes `g`.
fn update<R: Rule>(rule: &R, p: &mut [f32], g: &mut [f32], s: &mut [R::State], scale: f32) {
    for ((pv, gv), sv) in p.iter_mut().zip(g.iter_mut()).zip(s.iter_mut()) {
        *pv += rule.delta(*pv, *gv * scale, sv);
        *gv = 0.0;
    }
}

/// As [`update`], also returning Σ w² of the new weights and Σ Δ² of the update. Keeps the
/// old weights in `scratch` so that each loop stays simple enough to vectorise.
fn update_with_sums<R: Rule>(
    rule: &R,
    p: &mut [f32],
    g: &mut [f32],
    s: &mut [R::State],
    scale: f32,
    scratch: &mut Vec<f32>,
) -> (f64, f64) {
    scratch.clear();
    scratch.extend_from_slice(p);
    update(rule, p, g, s, scale);
    weight_and_update_squares(p, scratch)
}

#[inline(always)]
fn weight_and_update_lanes(new: &[f32], old: &[f32]) -> (f32, f32) {
    let (mut w, mut u) = ([0f32; LANES], [0f32; LANES]);
    let (cn, co) = (new.chunks_exact(LANES), old.chunks_exact(LANES));
    let (mut tw, mut tu) = (0f32, 0f32);
    for (x, y) in cn.remainder().iter().zip(co.remainder()) {
        tw += x * x;
        tu += (x - y) * (x - y);
    }
    for (x, y) in cn.zip(co) {
        for k in 0..LANES {
            let d = x[k] - y[k];
            w[k] += x[k] * x[k];
            u[k] += d * d;
        }
    }
    (w.iter().sum::<f32>() + tw, u.iter().sum::<f32>() + tu)
}

/// Σ new² and Σ (new − old)² in one pass, with the same NaN/Inf meaning as [`sum_squares`].
fn weight_and_update_squares(new: &[f32], old: &[f32]) -> (f64, f64) {
    #[cfg(target_arch = "x86_64")]
    let (w, u) = if std::arch::is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        unsafe fn avx2(new: &[f32], old: &[f32]) -> (f32, f32) {
            weight_and_update_lanes(new, old)
        }
        // SAFETY: the CPU has AVX2.
        unsafe { avx2(new, old) }
    } else {
        weight_and_update_lanes(new, old)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let (w, u) = weight_and_update_lanes(new, old);
    let (w, u) = (f64::from(w), f64::from(u));
    let n = new.len();
    if w.is_finite() && u.is_finite() && !lost_below_normal(w, n) && !lost_below_normal(u, n) {
        return (w, u);
    }
    let u = new
        .iter()
        .zip(old)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    (sum_squares(new), u)
}

/// libtorch's optimizers plus one stacked reduction for the statistics (CUDA, or on request).
struct TorchStepper {
    opt: nn::Optimizer,
    layers: Vec<(String, Vec<Tensor>)>,
    sums: Vec<LayerSums>,
}

impl TorchStepper {
    fn new(
        cfg: &OptimizerConfig,
        vars: &nn::VarStore,
        layers: &[LayerParams],
    ) -> Result<Self, StepError> {
        let c = cfg;
        let opt = match c.kind {
            OptimizerKind::Sgd => nn::Sgd {
                momentum: c.momentum,
                dampening: c.dampening,
                wd: c.weight_decay,
                nesterov: c.nesterov,
            }
            .build(vars, c.lr)?,
            OptimizerKind::Adam => nn::Adam {
                beta1: c.beta1,
                beta2: c.beta2,
                wd: c.weight_decay,
                eps: c.eps,
                amsgrad: false,
            }
            .build(vars, c.lr)?,
            OptimizerKind::AdamW => nn::AdamW {
                beta1: c.beta1,
                beta2: c.beta2,
                wd: c.weight_decay,
                eps: c.eps,
                amsgrad: false,
            }
            .build(vars, c.lr)?,
            OptimizerKind::RmsProp => nn::RmsProp {
                alpha: c.alpha,
                eps: c.eps,
                wd: c.weight_decay,
                momentum: c.momentum,
                centered: false,
            }
            .build(vars, c.lr)?,
        };
        let layers = layers
            .iter()
            .map(|l| {
                (
                    l.name.clone(),
                    l.params.iter().map(|p| p.shallow_clone()).collect(),
                )
            })
            .collect::<Vec<(String, Vec<Tensor>)>>();
        let sums = vec![LayerSums::default(); layers.len()];
        Ok(TorchStepper { opt, layers, sums })
    }

    /// Σ x² per tensor in f64, all reductions stacked and copied to the host once.
    fn squares(tensors: &[Tensor]) -> Result<Vec<f64>, StepError> {
        let parts: Vec<Tensor> = tensors
            .iter()
            .map(|t| t.to_kind(Kind::Double).square().sum(Kind::Double))
            .collect();
        let stacked = Tensor::f_stack(&parts, 0)?.to_device(Device::Cpu);
        Ok(Vec::<f64>::try_from(&stacked)?)
    }
}

impl Stepper for TorchStepper {
    fn set_hyper(&mut self, hyper: Hyper) {
        self.opt.set_lr(hyper.lr);
        self.opt.set_momentum(hyper.momentum);
        self.opt.set_weight_decay(hyper.weight_decay);
    }

    fn step(&mut self, want: Want, clip: Option<f64>) -> Result<&[LayerSums], StepError> {
        self.sums.iter_mut().for_each(|s| *s = LayerSums::default());
        let params: Vec<(usize, &Tensor)> = self
            .layers
            .iter()
            .enumerate()
            .flat_map(|(i, (_, ps))| ps.iter().map(move |p| (i, p)))
            .collect();
        let mut grads = Vec::with_capacity(params.len());
        for (i, p) in &params {
            let g = p.grad();
            if !g.defined() {
                return Err(StepError::NoGradient(self.layers[*i].0.clone()));
            }
            grads.push(g);
        }
        if want.grads {
            for ((i, _), sq) in params.iter().zip(Self::squares(&grads)?) {
                self.sums[*i].grad_sq += sq;
            }
        }
        let before: Vec<Tensor> = if want.weights {
            params.iter().map(|(_, p)| p.detach().copy()).collect()
        } else {
            Vec::new()
        };
        if let Some(max) = clip {
            self.opt.clip_grad_norm(max);
        }
        self.opt.step();
        self.opt.zero_grad();
        if want.weights {
            let now: Vec<Tensor> = params.iter().map(|(_, p)| p.detach()).collect();
            let updates: Vec<Tensor> = now.iter().zip(&before).map(|(n, b)| n - b).collect();
            let w = Self::squares(&now)?;
            let u = Self::squares(&updates)?;
            for (k, (i, _)) in params.iter().enumerate() {
                self.sums[*i].weight_sq += w[k];
                self.sums[*i].update_sq += u[k];
            }
        }
        Ok(&self.sums)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f64_squares(x: &[f32]) -> f64 {
        x.iter().map(|&v| f64::from(v) * f64::from(v)).sum()
    }

    /// Within what sixteen f32 lanes summed over the whole slice keep (about 3e-5 at 100,000
    /// elements).
    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-4 * a.abs().max(b.abs())
    }

    #[test]
    fn sums_of_squares_match_f64_from_vanishing_to_huge() {
        for &scale in &[1e-30f32, 1e-21, 1e-12, 1.0, 3e7, 1e19] {
            for &n in &[1usize, 15, 16, 17, 1000, 100_003] {
                let x: Vec<f32> = (0..n).map(|i| scale * ((i % 13) as f32 - 6.0)).collect();
                let (got, want) = (sum_squares(&x), f64_squares(&x));
                assert!(
                    close(got, want) || want == 0.0 && got == 0.0,
                    "{scale} {n}: {got} vs {want}"
                );
            }
        }
        assert!(sum_squares(&[1.0, f32::NAN]).is_nan());
        assert_eq!(sum_squares(&[1.0, f32::NEG_INFINITY]), f64::INFINITY);
    }

    #[test]
    fn weight_and_update_squares_match_f64_for_tiny_updates() {
        let old: Vec<f32> = (0..5000).map(|i| 1e-20 * (i % 7) as f32).collect();
        let new: Vec<f32> = old.iter().map(|v| v * 1.5).collect();
        let (w, u) = weight_and_update_squares(&new, &old);
        let want_u: f64 = new
            .iter()
            .zip(&old)
            .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
            .sum();
        assert!(close(w, f64_squares(&new)), "{w}");
        assert!(close(u, want_u), "{u} vs {want_u}");
    }
}
