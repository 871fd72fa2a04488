//! TensorBoard read speed: a generated event file of 2,000,000 scalar values (200,000 steps of
//! ten tags: loss, lr, total norm and seven layers' gradient norms, each value its own record
//! as PyTorch's `SummaryWriter` writes them), read to events as `sonograd replay` does: the
//! scan (tags) and the pass that makes the events.
//!
//! `cargo bench --bench tensorboard_read` prints scalar values per second (best and median of
//! 5 runs) for the scan, the event pass and both together. Options after `--`: `--steps=N`,
//! `--runs=N`. Under `cargo test` it runs once on a small file as a smoke test.

use std::time::Instant;

use prost::Message;
use sonograd::source::tensorboard::framing::frame;
use sonograd::source::tensorboard::proto;
use sonograd::source::tensorboard::TensorBoard;

const TAGS: [&str; 10] = [
    "train/loss",
    "lr",
    "grad_norm_total",
    "grad_norm/conv1",
    "grad_norm/conv2",
    "grad_norm/fc1",
    "grad_norm/fc2",
    "grad_norm/fc3",
    "grad_norm/fc4",
    "grad_norm/out",
];

/// Writes `steps` × 10 scalar records to `path`.
fn generate(path: &std::path::Path, steps: u64) {
    let mut out = Vec::with_capacity((steps * 10 * 48) as usize);
    let first = proto::Event {
        wall_time: 1.7e9,
        step: 0,
        file_version: Some("brain.Event:2".into()),
        summary: None,
    };
    frame(&first.encode_to_vec(), &mut out);
    let mut buf = Vec::new();
    for s in 0..steps {
        for (i, tag) in TAGS.iter().enumerate() {
            let e = proto::Event {
                wall_time: 1.7e9 + s as f64 * 0.01,
                step: s as i64,
                file_version: None,
                summary: Some(proto::Summary {
                    value: vec![proto::SummaryValue {
                        tag: tag.to_string(),
                        simple_value: Some(((s as f32) * 0.001 * (i + 1) as f32).sin() + 1.5),
                        tensor: None,
                        metadata: None,
                    }],
                }),
            };
            buf.clear();
            e.encode(&mut buf).expect("encoding to a Vec");
            frame(&buf, &mut out);
        }
    }
    std::fs::write(path, out).expect("writing the generated file");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let smoke = !args.iter().any(|a| a == "--bench");
    let arg = |name: &str| {
        args.iter()
            .find_map(|a| a.strip_prefix(name).and_then(|r| r.parse::<u64>().ok()))
    };
    let steps = arg("--steps=").unwrap_or(if smoke { 2_000 } else { 200_000 });
    let runs = arg("--runs=").unwrap_or(if smoke { 1 } else { 5 });
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("events.out.tfevents.1700000000.bench");
    generate(&path, steps);
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let values = steps * TAGS.len() as u64;
    let (mut scan, mut play, mut both) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let t0 = Instant::now();
        let tb = TensorBoard::scan(&path, None).expect("scan");
        let t1 = Instant::now();
        let mut events = 0u64;
        for e in tb.events() {
            e.expect("event");
            events += 1;
        }
        let t2 = Instant::now();
        assert_eq!(tb.values(), values);
        assert_eq!(events, values, "every value is one event");
        scan.push(values as f64 / (t1 - t0).as_secs_f64());
        play.push(values as f64 / (t2 - t1).as_secs_f64());
        both.push(values as f64 / (t2 - t0).as_secs_f64());
    }
    let show = |name: &str, v: &mut Vec<f64>| {
        v.sort_by(|a, b| b.total_cmp(a));
        println!(
            "{name:>22}: best {:.2} M values/s, median {:.2} M values/s",
            v[0] / 1e6,
            v[v.len() / 2] / 1e6
        );
    };
    println!(
        "tensorboard read: {values} scalar values ({steps} steps x {} tags), {:.1} MB, {runs} runs",
        TAGS.len(),
        bytes as f64 / 1e6
    );
    show("scan (tags)", &mut scan);
    show("events", &mut play);
    show("replay (scan + events)", &mut both);
}
