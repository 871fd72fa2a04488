//! Event constructors shared by the integration tests.
#![allow(dead_code)]

use sonograd::event::{Event, Layer, NonFiniteKind, Payload, Quantity, RunInfo};
use sonograd::mapping::{self, Mapping};
use sonograd::message::Message;
use sonograd::route::Router;

pub fn load(name: &str) -> Mapping {
    let path = format!("{}/config/{name}", env!("CARGO_MANIFEST_DIR"));
    mapping::check(&path).unwrap_or_else(|d| panic!("{d}"))
}

pub fn run_start(step: u64, layers: &[&str]) -> Event {
    let info = RunInfo {
        layers: layers.iter().map(|s| s.to_string()).collect(),
        ..RunInfo::default()
    };
    Event::new(
        step,
        0,
        0.0,
        Payload::RunStart {
            info: Box::new(info),
        },
    )
}

pub fn grad(step: u64, name: &str, index: Option<u32>, value: f64) -> Event {
    let layer = Layer {
        name: name.into(),
        index,
    };
    Event::new(step, 0, 0.0, Payload::GradNorm { layer, value })
}

pub fn ratio(step: u64, name: &str, index: u32, value: f64) -> Event {
    Event::new(
        step,
        0,
        0.0,
        Payload::UpdateRatio {
            layer: Layer::new(name, index),
            value,
        },
    )
}

pub fn loss(step: u64, value: f64) -> Event {
    Event::new(step, 0, 0.0, Payload::Loss { value })
}

pub fn lr(step: u64, value: f64) -> Event {
    Event::new(step, 0, 0.0, Payload::Lr { value })
}

pub fn total(step: u64, value: f64) -> Event {
    Event::new(step, 0, 0.0, Payload::TotalNorm { value })
}

pub fn nan_grad(step: u64, name: &str, index: u32) -> Event {
    let p = Payload::NonFinite {
        layer: Some(Layer::new(name, index)),
        quantity: Quantity::Grad,
        state: NonFiniteKind::Nan,
    };
    Event::new(step, 0, 0.0, p)
}

pub fn inf_loss(step: u64) -> Event {
    let p = Payload::NonFinite {
        layer: None,
        quantity: Quantity::Loss,
        state: NonFiniteKind::Inf,
    };
    Event::new(step, 0, 0.0, p)
}

pub fn epoch_end(step: u64, epoch: u32) -> Event {
    Event::new(step, epoch, 0.0, Payload::EpochEnd)
}

/// Routes one event at `now` and returns its messages.
pub fn feed(router: &mut Router, now: f64, e: &Event) -> Vec<Message> {
    let mut out = Vec::new();
    router.route(now, e, &mut out);
    out
}

pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}
