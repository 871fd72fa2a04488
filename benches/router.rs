//! Router throughput with a 10-route mapping: `cargo bench --bench router`.
//! Target: at least 5 million events per second on one core.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sonograd::event::{Event, Layer, NonFiniteKind, Payload, Quantity};
use sonograd::mapping::parse_str;
use sonograd::route::Router;

const MAPPING: &str = r#"
[outputs.synth]
kind = "synth"
[outputs.daw]
kind = "midi"
[outputs.sc]
kind = "osc"
port = 57120

[[route]]
output = "synth"
per_layer = true
match = { metric = "grad_norm" }
transform = { domain = [1e-3, 1e3], curve = "log" }
scale = { root = "C3", name = "pentatonic_major", octaves = 3 }
to = { param = "pitch" }
max_rate_hz = 20

[[route]]
output = "daw"
per_layer = true
match = { metric = "grad_norm", layer = "fc*" }
transform = { domain = [1e-3, 1e3], curve = "log", smoothing = 0.5 }
scale = { root = "A2", name = "minor", octaves = 2 }
to = { note = "value", velocity = "value" }
max_rate_hz = 8
coalesce = "max"

[[route]]
output = "sc"
per_layer = true
match = { metric = "grad_norm" }
transform = { domain = [1e-3, 1e3], curve = "log" }
to = { address = "/grad/{layer}", args = ["i:layer_index", "f:value"] }

[[route]]
output = "synth"
match = { metric = "loss" }
transform = { domain = [0.01, 10], curve = "log", smoothing = 0.5 }
to = { param = "cutoff", voice = 15 }
max_rate_hz = 30
coalesce = "mean"

[[route]]
output = "daw"
match = { metric = "loss" }
transform = { domain = [0, 4] }
to = { cc = 74 }
send_on_change = true

[[route]]
output = "daw"
match = { metric = "total_norm" }
transform = { domain = "learned", learn = "percentile", warmup = 64 }
to = { pitch_bend = true }

[[route]]
output = "synth"
alarm = true
match = { metric = "total_norm", when = "value > 100" }
transform = { domain = [1, 10000], curve = "log" }
to = { param = "trigger", voice = 13 }

[[route]]
output = "sc"
per_layer = true
match = { metric = "update_ratio" }
transform = { domain = [1e-5, 1e-1], curve = "exp", curvature = 3 }
to = { address = "/ratio/{layer}" }
max_rate_hz = 30

[[route]]
output = "daw"
match = { metric = "lr" }
transform = { domain = [1e-5, 1], curve = "log" }
to = { cc = 1, 14bit = true }
send_on_change = true

[[route]]
output = "synth"
match = { metric = "nonfinite" }
to = { param = "trigger", voice = 14 }
"#;

/// A training-like stream: per step, grad norm and update ratio for 4 layers, loss, total
/// norm and lr, and now and then a NaN.
fn stream(steps: u64) -> Vec<Event> {
    let layers = ["fc1", "fc2", "conv1", "fc3"];
    let mut v = Vec::new();
    for s in 0..steps {
        let x = 0.01 * (1.0 + (s % 97) as f64);
        for (i, name) in layers.iter().enumerate() {
            let layer = Layer::new(*name, i as u32);
            v.push(Event::new(
                s,
                0,
                0.0,
                Payload::GradNorm {
                    layer: layer.clone(),
                    value: x * (i + 1) as f64,
                },
            ));
            v.push(Event::new(
                s,
                0,
                0.0,
                Payload::UpdateRatio {
                    layer,
                    value: x * 1e-3,
                },
            ));
        }
        v.push(Event::new(
            s,
            0,
            0.0,
            Payload::Loss {
                value: 2.0 / (1.0 + s as f64 * 0.01),
            },
        ));
        v.push(Event::new(
            s,
            0,
            0.0,
            Payload::TotalNorm { value: x * 300.0 },
        ));
        v.push(Event::new(s, 0, 0.0, Payload::Lr { value: 0.1 }));
        if s % 500 == 0 {
            let p = Payload::NonFinite {
                layer: Some(Layer::new("fc2", 1)),
                quantity: Quantity::Grad,
                state: NonFiniteKind::Nan,
            };
            v.push(Event::new(s, 0, 0.0, p));
        }
    }
    v
}

fn bench(c: &mut Criterion) {
    let mapping = parse_str(MAPPING, "bench.toml").unwrap();
    assert_eq!(mapping.routes.len(), 10);
    let events = stream(1000);
    let mut router = Router::new(&mapping);
    let mut out = Vec::with_capacity(256);
    let mut now = 0.0;
    let mut group = c.benchmark_group("router");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("route_10_routes", |b| {
        b.iter(|| {
            for (i, e) in events.iter().enumerate() {
                // ~1000 events a second of clock: the rate limits merge most values.
                now += 0.001;
                router.route(now, black_box(e), &mut out);
                if i % 16 == 0 {
                    router.tick(now, &mut out);
                }
                out.clear();
            }
        })
    });
    group.finish();
}

// No plots: criterion's plotting backend needs system fonts, which a fresh server lacks.
criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = bench
}
criterion_main!(benches);
