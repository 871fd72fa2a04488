//! The detector's corpus: real training runs with the built-in trainer, healthy ones that
//! must stay silent and pathological ones that must be named (kind, layer, step window).
//! Shared by `tests/diagnose_corpus.rs` (the corpus, in CI) and
//! `examples/diagnose_sweep.rs` (the corpus and more seeds and settings, with precision and
//! recall per kind). Every run is trained for real when it is judged; nothing is stored.

#![allow(dead_code)]

use std::ops::RangeInclusive;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sonograd::diagnose::{Detector, Thresholds};
use sonograd::event::{DiagnosisKind, Event, Payload};
use sonograd::pipeline::consume::{self, Consumers, EventConsumer};
use sonograd::pipeline::queue::{event_queue, EventSender};
use sonograd_trainer::data::DataSpec;
use sonograd_trainer::model::{Activation, ModelKind, ModelOptions};
use sonograd_trainer::optim::{OptimizerConfig, OptimizerKind};
use sonograd_trainer::{EventSink, Length, TrainConfig, Trainer};

use DiagnosisKind::*;

/// A diagnosis as the corpus looks at it.
#[derive(Debug, Clone)]
pub struct Found {
    pub step: u64,
    pub kind: DiagnosisKind,
    pub layers: Vec<String>,
    pub reason: String,
}

/// A diagnosis a pathological run must get: its kind, the first layer it names (when the
/// kind names layers) and the window of steps it must come in.
#[derive(Debug, Clone)]
pub struct Expect {
    pub kind: DiagnosisKind,
    pub layer: Option<&'static str>,
    pub steps: RangeInclusive<u64>,
}

/// One run of the corpus.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub cfg: TrainConfig,
    /// What must be named (empty: a healthy run, nothing may be).
    pub expect: Vec<Expect>,
    /// Other kinds that are true of the run and may be named (e.g. `plateau` for a net
    /// stuck at chance because its gradients vanish).
    pub allowed: Vec<DiagnosisKind>,
    /// Live run that hangs after this step for this long (a stall).
    pub pause: Option<(u64, Duration)>,
    pub thresholds: Thresholds,
}

/// A training configuration.
pub struct Run {
    cfg: TrainConfig,
}

/// Starts a configuration: model, data, optimizer and learning rate.
pub fn run(model: ModelKind, data: DataSpec, kind: OptimizerKind, lr: f64) -> Run {
    Run {
        cfg: TrainConfig {
            model,
            hidden: vec![64, 32],
            data,
            optimizer: OptimizerConfig::new(kind, lr),
            length: Length::Steps(1000),
            threads: 1,
            ..TrainConfig::default()
        },
    }
}

impl Run {
    pub fn hidden(mut self, h: &[usize]) -> Self {
        self.cfg.hidden = h.to_vec();
        self
    }
    pub fn batch(mut self, b: usize) -> Self {
        self.cfg.batch_size = b;
        self
    }
    pub fn steps(mut self, s: u64) -> Self {
        self.cfg.length = Length::Steps(s);
        self
    }
    pub fn seed(mut self, s: u64) -> Self {
        self.cfg.seed = s;
        self
    }
    pub fn momentum(mut self, m: f64) -> Self {
        self.cfg.optimizer.momentum = m;
        self
    }
    pub fn weight_decay(mut self, w: f64) -> Self {
        self.cfg.optimizer.weight_decay = w;
        self
    }
    pub fn activation(mut self, a: Activation) -> Self {
        self.cfg.model_options.activation = a;
        self
    }
    pub fn init_bias(mut self, b: f64) -> Self {
        self.cfg.model_options = ModelOptions {
            init_bias: Some(b),
            ..self.cfg.model_options
        };
        self
    }
    /// A healthy run: nothing may be named.
    pub fn healthy(self, name: &str) -> Case {
        self.case(name, vec![], vec![])
    }
    /// A pathological run.
    pub fn case(self, name: &str, expect: Vec<Expect>, allowed: Vec<DiagnosisKind>) -> Case {
        Case {
            name: name.to_string(),
            cfg: self.cfg,
            expect,
            allowed,
            pause: None,
            thresholds: Thresholds::default(),
        }
    }
}

/// RMSprop with `alpha = 0`: its second moment is the last squared gradient, so every step
/// is the learning rate times the gradient's sign (sign descent) and the weights hop back and
/// forth across the minimum.
pub fn sign_descent(mut r: Run) -> Run {
    r.cfg.optimizer.alpha = 0.0;
    r
}

/// Seconds a stalled run hangs in the corpus, and the stall threshold it is judged with.
pub const HANG: Duration = Duration::from_millis(900);
pub const STALL_SECONDS: f64 = 0.4;

/// A live run that hangs for [`HANG`] after step `at`.
pub fn stall(r: Run, at: u64) -> Stalled {
    Stalled { run: r, at }
}

/// A run that will hang.
pub struct Stalled {
    run: Run,
    at: u64,
}

impl Stalled {
    pub fn case(self, name: &str, expect: Vec<Expect>, allowed: Vec<DiagnosisKind>) -> Case {
        let mut c = self.run.case(name, expect, allowed);
        c.pause = Some((self.at, HANG));
        c.thresholds.stall_seconds = STALL_SECONDS;
        c
    }
}

/// An expectation.
pub fn expect(
    kind: DiagnosisKind,
    layer: Option<&'static str>,
    steps: RangeInclusive<u64>,
) -> Expect {
    Expect { kind, layer, steps }
}

fn steps_of(c: &TrainConfig) -> u64 {
    match c.length {
        Length::Steps(s) => s,
        _ => 0,
    }
}

/// The healthy runs of the corpus: all four optimizers, MLP and CNN, every built-in data
/// set, batch 8 to 512, 500 to 5,000 steps, several seeds.
pub fn healthy() -> Vec<Case> {
    use Activation::*;
    use DataSpec::*;
    use ModelKind::*;
    use OptimizerKind::*;
    vec![
        run(Mlp, Digits, Sgd, 0.01)
            .hidden(&[256, 128, 64])
            .batch(20)
            .steps(1000)
            .healthy("seed-sgd-0.01"),
        run(Mlp, Digits, Sgd, 0.05)
            .batch(32)
            .steps(2000)
            .seed(1)
            .healthy("digits-sgd"),
        run(Mlp, Digits, Adam, 1e-3)
            .batch(64)
            .steps(3000)
            .seed(2)
            .healthy("digits-adam"),
        run(Mlp, Digits, AdamW, 1e-3)
            .batch(128)
            .steps(1500)
            .seed(3)
            .healthy("digits-adamw"),
        run(Mlp, Digits, RmsProp, 1e-3)
            .batch(16)
            .steps(2000)
            .seed(4)
            .healthy("digits-rmsprop"),
        run(Mlp, Digits, Adam, 1e-3)
            .batch(8)
            .steps(2000)
            .seed(5)
            .healthy("digits-adam-b8"),
        run(Mlp, Digits, Sgd, 0.05)
            .momentum(0.9)
            .batch(256)
            .steps(1000)
            .activation(Tanh)
            .seed(6)
            .healthy("digits-sgdm-tanh"),
        run(Cnn, Digits, Sgd, 0.05)
            .momentum(0.9)
            .batch(32)
            .steps(500)
            .seed(7)
            .healthy("cnn-sgdm"),
        run(Cnn, Digits, Adam, 1e-3)
            .batch(32)
            .steps(500)
            .seed(8)
            .healthy("cnn-adam"),
        run(Cnn, Digits, RmsProp, 5e-4)
            .batch(32)
            .steps(500)
            .seed(9)
            .healthy("cnn-rmsprop"),
        run(Cnn, Digits, AdamW, 1e-3)
            .batch(32)
            .steps(500)
            .seed(10)
            .healthy("cnn-adamw"),
        run(Mlp, Spirals, Adam, 0.01)
            .hidden(&[64, 64])
            .batch(64)
            .steps(3000)
            .seed(11)
            .healthy("spirals-adam"),
        run(Mlp, Spirals, Sgd, 0.05)
            .hidden(&[64, 64])
            .momentum(0.9)
            .batch(32)
            .steps(5000)
            .seed(12)
            .healthy("spirals-sgdm"),
        run(Mlp, Spirals, AdamW, 0.005)
            .hidden(&[64, 64])
            .batch(512)
            .steps(2000)
            .seed(13)
            .healthy("spirals-adamw-b512"),
        run(Mlp, Spirals, RmsProp, 0.001)
            .hidden(&[64, 64])
            .batch(64)
            .steps(4000)
            .seed(14)
            .healthy("spirals-rmsprop"),
        run(Mlp, Moons, Sgd, 0.05)
            .batch(24)
            .steps(2000)
            .seed(15)
            .healthy("moons-sgd-b24"),
        run(Mlp, Moons, Adam, 0.005)
            .batch(256)
            .steps(1000)
            .seed(16)
            .healthy("moons-adam"),
        run(Mlp, Moons, RmsProp, 0.003)
            .batch(16)
            .steps(1500)
            .activation(Tanh)
            .seed(17)
            .healthy("moons-rmsprop-tanh"),
        run(Mlp, Blobs, RmsProp, 1e-3)
            .batch(512)
            .steps(1000)
            .seed(18)
            .healthy("blobs-rmsprop-b512"),
        run(Mlp, Blobs, Sgd, 0.05)
            .batch(8)
            .steps(3000)
            .seed(19)
            .healthy("blobs-sgd-b8"),
        run(Mlp, Blobs, Adam, 0.01)
            .batch(32)
            .steps(1000)
            .activation(Sigmoid)
            .seed(20)
            .healthy("blobs-adam-sigmoid"),
        run(Mlp, Xor, AdamW, 0.01)
            .batch(32)
            .steps(2500)
            .seed(21)
            .healthy("xor-adamw"),
        run(Mlp, Xor, RmsProp, 0.005)
            .batch(128)
            .steps(2000)
            .seed(22)
            .healthy("xor-rmsprop"),
        run(Mlp, Xor, Sgd, 0.1)
            .momentum(0.9)
            .batch(64)
            .steps(3000)
            .seed(23)
            .healthy("xor-sgdm"),
    ]
}

/// The pathological runs: each of the eight kinds, at various depths, widths, activations
/// and optimizers, with the kind, layer and step window it must be named with.
pub fn pathological() -> Vec<Case> {
    use Activation::*;
    use DataSpec::*;
    use ModelKind::*;
    use OptimizerKind::*;
    vec![
        // The seed's demo: SGD lr 1.0 explodes, then goes NaN.
        run(Mlp, Digits, Sgd, 1.0)
            .hidden(&[256, 128, 64])
            .batch(20)
            .steps(60)
            .case(
                "seed-sgd-1.0",
                vec![
                    expect(Exploding, Some("fc1"), 2..=6),
                    expect(NonFinite, None, 3..=12),
                ],
                vec![],
            ),
        run(Mlp, Digits, Sgd, 1.0)
            .hidden(&[256, 128, 64])
            .batch(256)
            .steps(60)
            .case(
                "seed-sgd-1.0-b256",
                vec![
                    expect(Exploding, Some("fc2"), 2..=20),
                    expect(NonFinite, None, 3..=30),
                ],
                vec![],
            ),
        run(Mlp, Digits, Sgd, 0.01)
            .hidden(&[64; 6])
            .activation(Sigmoid)
            .steps(300)
            .case(
                "deep-sigmoid-6x64",
                vec![expect(Vanishing, Some("fc1"), 19..=40)],
                vec![Plateau],
            ),
        run(Mlp, Moons, Adam, 1e-3)
            .hidden(&[32; 10])
            .activation(Sigmoid)
            .batch(64)
            .steps(600)
            .seed(3)
            .case(
                "deep-sigmoid-10x32-adam",
                vec![expect(Vanishing, Some("fc1"), 19..=60)],
                vec![Plateau],
            ),
        run(Mlp, Digits, Sgd, 0.01)
            .hidden(&[256, 128, 64])
            .init_bias(-5.0)
            .steps(100)
            .case(
                "dead-relu-bias-5",
                vec![expect(DeadLayer, Some("fc1"), 19..=19)],
                vec![Plateau],
            ),
        run(Mlp, Spirals, Adam, 1e-3)
            .hidden(&[32, 32, 32])
            .init_bias(-3.0)
            .batch(64)
            .steps(300)
            .seed(4)
            .case(
                "dead-relu-spirals-adam",
                vec![expect(DeadLayer, Some("fc1"), 19..=40)],
                vec![Plateau],
            ),
        run(Mlp, Blobs, Sgd, 2.0)
            .hidden(&[64, 32])
            .batch(512)
            .steps(300)
            .seed(1)
            .case(
                "blobs-sgd-2.0-explodes-and-dies",
                vec![
                    expect(Exploding, Some("fc1"), 2..=8),
                    expect(DeadLayer, Some("fc1"), 19..=60),
                ],
                vec![Plateau],
            ),
        run(Mlp, Blobs, Sgd, 4.0)
            .hidden(&[64, 32])
            .batch(512)
            .steps(200)
            .seed(1)
            .case(
                "blobs-sgd-4.0-explodes-and-dies",
                vec![
                    expect(Exploding, Some("fc1"), 2..=6),
                    expect(DeadLayer, Some("fc1"), 19..=60),
                ],
                vec![Plateau],
            ),
        run(Mlp, Digits, Sgd, 0.5)
            .batch(64)
            .steps(400)
            .seed(1)
            .case(
                "digits-sgd-0.5-spikes-then-dies",
                vec![expect(LossSpike, None, 25..=60)],
                vec![DeadLayer, Plateau, Exploding],
            ),
        run(Mlp, Digits, Sgd, 1e-5)
            .hidden(&[128, 64])
            .batch(64)
            .steps(1200)
            .seed(5)
            .case(
                "plateau-lr-too-small",
                vec![expect(Plateau, None, 299..=600)],
                vec![],
            ),
        run(Mlp, Blobs, RmsProp, 1e-7)
            .batch(32)
            .steps(1200)
            .seed(6)
            .case(
                "plateau-rmsprop-tiny-lr",
                vec![expect(Plateau, None, 299..=600)],
                vec![],
            ),
        // RMSprop too fast near convergence: its step blows up on tiny gradients. When it
        // first does is chaotic: it moves by hundreds or thousands of steps with the CPU's
        // float kernels (seed 3 spikes at step 475, 721 or 1401 under MKL_CBWR=COMPATIBLE,
        // SSE4_2, AVX2 and an Intel AVX-512 machine, and only after step 1500 on an AMD EPYC;
        // there, 7 of seeds 1-8 spike within 4,000 steps), so the case trains long and asks
        // for a spike after convergence, anywhere. A blow-up that big may also be named as
        // exploding norms.
        run(Mlp, Moons, RmsProp, 0.01)
            .batch(16)
            .steps(4000)
            .activation(Tanh)
            .seed(3)
            .case(
                "moons-rmsprop-0.01-spikes",
                vec![expect(LossSpike, None, 200..=4000)],
                vec![Exploding],
            ),
        // Weight decay so strong the weights stay at zero: stuck at chance.
        run(Mlp, Xor, AdamW, 0.01)
            .weight_decay(50.0)
            .batch(64)
            .steps(800)
            .seed(5)
            .case(
                "xor-adamw-decay-50-plateau",
                vec![expect(Plateau, None, 299..=600)],
                // Its weights shrink to nothing: the early layers' gradients go too.
                vec![Vanishing, DeadLayer],
            ),
        sign_descent(run(Mlp, Moons, RmsProp, 0.03).batch(256).steps(400).seed(1)).case(
            "moons-rmsprop-alpha0-oscillates",
            vec![expect(Oscillation, None, 40..=120)],
            vec![],
        ),
        sign_descent(
            run(Mlp, Moons, RmsProp, 0.03)
                .batch(3086)
                .steps(200)
                .seed(1),
        )
        .case(
            "moons-rmsprop-alpha0-full-batch-oscillates",
            vec![expect(Oscillation, None, 40..=80)],
            vec![],
        ),
        sign_descent(
            run(Mlp, Digits, RmsProp, 0.03)
                .hidden(&[128, 64])
                .batch(256)
                .steps(400)
                .seed(1),
        )
        .case(
            "digits-rmsprop-alpha0-oscillates",
            vec![expect(Oscillation, None, 40..=200)],
            vec![LossSpike],
        ),
        stall(
            run(Mlp, Moons, Adam, 0.01).batch(32).steps(300).seed(3),
            150,
        )
        .case(
            "moons-adam-hangs",
            vec![expect(Stall, None, 150..=150)],
            vec![],
        ),
        stall(
            run(Mlp, Xor, RmsProp, 0.003)
                .hidden(&[16, 16, 16])
                .batch(64)
                .steps(200)
                .seed(4),
            100,
        )
        .case(
            "xor-rmsprop-hangs",
            vec![expect(Stall, None, 100..=100)],
            vec![],
        ),
    ]
}

/// Healthy runs beyond the corpus: other seeds, widths, depths and settings (the sweep).
pub fn beyond() -> Vec<Case> {
    use Activation::*;
    use DataSpec::*;
    use ModelKind::*;
    use OptimizerKind::*;
    let mut v = Vec::new();
    for seed in [101, 202, 303] {
        v.push(
            run(Mlp, Digits, Adam, 1e-3)
                .hidden(&[128])
                .batch(32)
                .steps(1500)
                .seed(seed)
                .healthy(&format!("x-digits-adam-{seed}")),
        );
        v.push(
            run(Mlp, Digits, Sgd, 0.02)
                .hidden(&[256, 128, 64])
                .batch(20)
                .steps(1500)
                .seed(seed)
                .healthy(&format!("x-digits-sgd-{seed}")),
        );
        v.push(
            run(Mlp, Moons, AdamW, 0.003)
                .batch(64)
                .steps(1500)
                .seed(seed)
                .healthy(&format!("x-moons-adamw-{seed}")),
        );
        v.push(
            run(Mlp, Spirals, Adam, 0.005)
                .hidden(&[128, 128])
                .batch(128)
                .steps(2000)
                .seed(seed)
                .healthy(&format!("x-spirals-adam-{seed}")),
        );
        v.push(
            run(Mlp, Blobs, RmsProp, 0.002)
                .activation(Tanh)
                .batch(16)
                .steps(1500)
                .seed(seed)
                .healthy(&format!("x-blobs-rmsprop-{seed}")),
        );
        v.push(
            run(Mlp, Xor, Sgd, 0.05)
                .momentum(0.9)
                .batch(128)
                .steps(2000)
                .seed(seed)
                .healthy(&format!("x-xor-sgdm-{seed}")),
        );
        v.push(
            run(Cnn, Digits, Adam, 5e-4)
                .batch(32)
                .steps(500)
                .seed(seed)
                .healthy(&format!("x-cnn-adam-{seed}")),
        );
    }
    v.push(
        run(Mlp, Digits, Sgd, 0.05)
            .hidden(&[64; 4])
            .batch(64)
            .steps(2000)
            .seed(7)
            .healthy("x-digits-deep-relu"),
    );
    v.push(
        run(Mlp, Digits, AdamW, 1e-3)
            .hidden(&[512])
            .batch(512)
            .steps(1000)
            .seed(8)
            .healthy("x-digits-wide-b512"),
    );
    v.push(
        run(Mlp, Spirals, RmsProp, 1e-3)
            .hidden(&[32, 32, 32])
            .activation(Tanh)
            .batch(8)
            .steps(3000)
            .seed(9)
            .healthy("x-spirals-rmsprop-b8"),
    );
    v
}

/// Collects what comes out of the consumer thread.
struct Collect(Arc<Mutex<Vec<Event>>>);

impl EventConsumer for Collect {
    fn event(&mut self, event: &Event) -> std::io::Result<()> {
        self.0.lock().unwrap().push(event.clone());
        Ok(())
    }
}

/// Hangs once, before the first event after step `at`: a trainer waiting on a stuck data
/// loader.
struct Hang<'a> {
    tx: &'a mut EventSender,
    at: u64,
    pause: Duration,
    done: bool,
}

impl EventSink for Hang<'_> {
    fn emit(&mut self, event: Event) {
        if !self.done && event.step > self.at {
            self.done = true;
            std::thread::sleep(self.pause);
        }
        self.tx.emit(event);
    }
}

fn found(events: &[Event]) -> Vec<Found> {
    events
        .iter()
        .filter_map(|e| match &e.payload {
            Payload::Diagnosis {
                diagnosis,
                layers,
                reason,
            } => Some(Found {
                step: e.step,
                kind: *diagnosis,
                layers: layers.iter().map(|l| l.to_string()).collect(),
                reason: reason.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// Trains the case for real and returns its events and the detector's diagnoses. A case
/// with a pause runs live: trainer and consumer thread, as `sonograd train` runs them.
pub fn diagnose(case: &Case) -> (Vec<Event>, Vec<Found>) {
    let mut trainer = Trainer::new(case.cfg.clone()).expect("trainer");
    let stop = AtomicBool::new(false);
    let mut detector = Detector::new(case.thresholds);
    match case.pause {
        None => {
            let mut events: Vec<Event> = Vec::new();
            trainer.run(Some(&mut events), &stop).expect("run");
            let mut out = Vec::new();
            for e in &events {
                detector.observe(e, &mut out);
            }
            detector.finish(&mut out);
            (events, found(&out))
        }
        Some((at, pause)) => {
            let all = Arc::new(Mutex::new(Vec::new()));
            let (mut tx, rx, _) = event_queue(1 << 16);
            let list: Vec<Box<dyn EventConsumer>> = vec![Box::new(Collect(all.clone()))];
            let consumers = Consumers::new(list, Some(detector)).live();
            let thread = consume::spawn(rx, consumers);
            let mut sink = Hang {
                tx: &mut tx,
                at,
                pause,
                done: false,
            };
            trainer.run(Some(&mut sink), &stop).expect("run");
            tx.close();
            thread.join().expect("consumer thread");
            let all = std::mem::take(&mut *all.lock().unwrap());
            let out = found(&all);
            let events = all
                .into_iter()
                .filter(|e| e.payload.kind() != "diagnosis")
                .collect();
            (events, out)
        }
    }
}

/// Whether the diagnoses are right for the case: every expected one named with its layer in
/// its window, and nothing named that is neither expected nor allowed. The error says what
/// went wrong.
pub fn judge(case: &Case, found: &[Found]) -> Result<(), String> {
    let mut problems = Vec::new();
    for x in &case.expect {
        let ok = found.iter().any(|f| {
            f.kind == x.kind
                && x.steps.contains(&f.step)
                && x.layer
                    .is_none_or(|l| f.layers.first().map(String::as_str) == Some(l))
        });
        if !ok {
            problems.push(format!(
                "expected {} ({}) in steps {:?}",
                x.kind,
                x.layer.unwrap_or("no layer"),
                x.steps
            ));
        }
    }
    for f in found {
        if !case.expect.iter().any(|x| x.kind == f.kind) && !case.allowed.contains(&f.kind) {
            problems.push(format!("false alarm: {f:?}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}\n  all diagnoses: {found:#?}",
            case.name,
            problems.join("; ")
        ))
    }
}

/// Steps the case trains.
pub fn planned(case: &Case) -> u64 {
    steps_of(&case.cfg)
}
