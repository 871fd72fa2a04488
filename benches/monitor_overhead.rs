//! Per-step cost of monitoring: the seed's model (784-256-128-64-10 MLP, SGD) on the CPU,
//! steps with full monitoring (statistics, events, queue, a consumer thread recording JSON
//! lines to a file) against steps with `--unmeasured`, interleaved in blocks so that drift
//! and noise hit both sides alike. Prints the median per-step times and the overhead.
//!
//! Run: `cargo bench --bench monitor_overhead` (add `-- --quick` for a short run). Under
//! `cargo test --all-targets` it runs a few rounds only, as a smoke test.

use std::time::Instant;

use sonograd::pipeline::consume;
use sonograd::pipeline::queue::{event_queue, DEFAULT_CAPACITY};
use sonograd::pipeline::record::Recorder;
use sonograd_trainer::optim::{OptimizerConfig, OptimizerKind};
use sonograd_trainer::{EventSink, Length, TrainConfig, Trainer};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn measure(batch: usize, rounds: usize, block: usize) -> (f64, f64, f64) {
    let cfg = TrainConfig {
        batch_size: batch,
        optimizer: OptimizerConfig::new(OptimizerKind::Sgd, 0.01),
        length: Length::Steps(u64::MAX),
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(cfg).expect("trainer");
    let dir = tempfile::tempdir().expect("tempdir");
    let recorder = Recorder::create(&dir.path().join("bench.jsonl")).expect("recorder");
    let (mut tx, rx, stats) = event_queue(DEFAULT_CAPACITY);
    let consumers: Vec<Box<dyn consume::EventConsumer>> = vec![Box::new(recorder)];
    let consumer = consume::spawn(rx, consumers);
    let time_block = |trainer: &mut Trainer, monitored: bool, tx: &mut dyn EventSink| {
        let t = Instant::now();
        for _ in 0..block {
            let sink: Option<&mut dyn EventSink> = if monitored { Some(&mut *tx) } else { None };
            trainer.step(sink).expect("step");
        }
        t.elapsed().as_secs_f64() / block as f64
    };
    for _ in 0..3 {
        time_block(&mut trainer, true, &mut tx);
        time_block(&mut trainer, false, &mut tx);
    }
    // Short paired blocks: each round's ratio compares two neighbouring stretches of time,
    // so drift and neighbours' noise cancel; the median ratio ignores outlier rounds.
    let (mut on, mut off, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (a, b) = if round % 2 == 0 {
            let a = time_block(&mut trainer, true, &mut tx);
            (a, time_block(&mut trainer, false, &mut tx))
        } else {
            let b = time_block(&mut trainer, false, &mut tx);
            (time_block(&mut trainer, true, &mut tx), b)
        };
        on.push(a);
        off.push(b);
        ratios.push(a / b);
    }
    tx.close();
    let report = consumer.join().expect("consumer");
    assert!(report.events > 0 && report.errors.is_empty(), "{report:?}");
    eprintln!(
        "    ({} events recorded, {} coalesced)",
        report.events,
        stats.coalesced()
    );
    (median(&mut on), median(&mut off), median(&mut ratios))
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this as a smoke test.
    let args: Vec<String> = std::env::args().collect();
    let smoke = !args.iter().any(|a| a == "--bench");
    let quick = smoke || args.iter().any(|a| a == "--quick");
    println!("monitor overhead, seed's MLP 784-256-128-64-10, SGD lr 0.01, CPU, 1 libtorch thread");
    for (batch, rounds, block) in [(20usize, 300, 20), (256, 120, 10)] {
        let rounds = if smoke {
            4
        } else if quick {
            rounds / 5
        } else {
            rounds
        };
        let (on, off, ratio) = measure(batch, rounds, block);
        println!(
            "batch {batch:>3}: monitored {:>7.1} us/step, unmonitored {:>7.1} us/step (medians), \
             overhead {:+.2} % (median of {rounds} paired rounds)",
            on * 1e6,
            off * 1e6,
            (ratio - 1.0) * 100.0
        );
    }
}
