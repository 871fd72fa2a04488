//! The OSC address scheme of `listen`, both directions, pure.
//!
//! One message per event. The address names the kind; positional arguments come first and
//! the step is always the last positional one; after them any number of optional named
//! pairs `s:key value` may follow:
//!
//! | address | positional arguments |
//! | --- | --- |
//! | `/sonograd/grad_norm` | `s:layer f:value i:step` |
//! | `/sonograd/weight_norm` | `s:layer f:value i:step` |
//! | `/sonograd/update_ratio` | `s:layer f:value i:step` |
//! | `/sonograd/total_norm` | `f:value i:step` |
//! | `/sonograd/loss` | `f:value i:step` |
//! | `/sonograd/lr` | `f:value i:step` |
//! | `/sonograd/eval` | `s:name f:value i:step` |
//! | `/sonograd/non_finite` | `s:quantity s:state i:step` (`grad`/`weight`/`loss`, `nan`/`inf`) |
//! | `/sonograd/epoch_end` | `i:epoch i:step` |
//! | `/sonograd/run_start` | `i:step` |
//! | `/sonograd/run_end` | `s:reason i:step` (`completed`/`non_finite`/`interrupted`/`stopped`) |
//! | `/sonograd/control` | `s:control s:target f:value i:step` (named: `source`) |
//!
//! Named pairs: `epoch` (int), `time` (float or double, Unix seconds), `run` (string),
//! `rank` (int), `layer_index` (int), `layer` (string, for `non_finite`), and for
//! `run_start` `model`, `optimizer`, `dataset`, `device` (strings), `lr` (float),
//! `batch_size`, `steps`, `seed`, `control_port` (ints) and `layers` (comma-separated
//! string; `control_port`: where the sender reads controls, `docs/controls.md`). Unknown keys
//! are ignored (as unknown JSON fields are).
//!
//! Types: `f:` accepts float32, float64, int32, int64, the OSC `Inf` tag and the strings
//! `NaN`, `Infinity`, `-Infinity`; `i:` accepts int32 and int64 (not negative). A packet may
//! be a bundle; each message in it is one event.

use std::sync::Arc;

use crate::event::{
    DiagnosisKind, EndReason, Event, Layer, NonFiniteKind, Payload, Quantity, RunInfo,
};
use rosc::{OscBundle, OscMessage, OscPacket, OscTime, OscType};

use super::decode::{BadInput, BadKind, MAX_NAME_LEN};

/// Address prefix of every message.
pub const PREFIX: &str = "/sonograd/";

/// Deepest bundle nesting accepted.
pub const MAX_BUNDLE_DEPTH: usize = 8;

/// Decodes a datagram holding an OSC message or bundle, calling `out` once per message
/// (or once with the error when the packet itself is not OSC).
pub fn decode_osc_packet(bytes: &[u8], out: &mut dyn FnMut(Result<Event, BadInput>)) {
    if bytes.is_empty() {
        out(Err(BadInput::new(BadKind::Empty, "empty datagram")));
        return;
    }
    // rosc recurses into nested bundles; refuse pathological nesting before it does.
    if bundle_depth(bytes, 0) > MAX_BUNDLE_DEPTH {
        out(Err(BadInput::new(
            BadKind::OscTooDeep,
            format!("bundles nested deeper than {MAX_BUNDLE_DEPTH}"),
        )));
        return;
    }
    match rosc::decoder::decode_udp(bytes) {
        Ok((_, packet)) => walk(&packet, out),
        Err(e) => out(Err(BadInput::new(
            BadKind::NotOsc,
            format!("not an OSC packet ({e:?})"),
        ))),
    }
}

/// How deeply bundles nest at the start of `bytes` (a cheap scan of first elements).
fn bundle_depth(bytes: &[u8], depth: usize) -> usize {
    const TAG: &[u8] = b"#bundle\0";
    if depth > MAX_BUNDLE_DEPTH || !bytes.starts_with(TAG) {
        return depth;
    }
    // "#bundle\0", 8-byte time tag, then elements: 4-byte size + content.
    let mut rest = &bytes[16.min(bytes.len())..];
    let mut deepest = depth + 1;
    while rest.len() >= 4 {
        let size = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let end = (4 + size).min(rest.len());
        deepest = deepest.max(bundle_depth(&rest[4..end], depth + 1));
        rest = &rest[end..];
    }
    deepest
}

fn walk(packet: &OscPacket, out: &mut dyn FnMut(Result<Event, BadInput>)) {
    match packet {
        OscPacket::Message(m) => out(decode_osc_message(m)),
        OscPacket::Bundle(b) => {
            for p in &b.content {
                walk(p, out);
            }
        }
    }
}

/// Decodes one OSC message of the scheme above.
pub fn decode_osc_message(msg: &OscMessage) -> Result<Event, BadInput> {
    let kind = msg
        .addr
        .strip_prefix(PREFIX)
        .ok_or_else(|| unknown(&msg.addr))?;
    let positional = match kind {
        "grad_norm" | "weight_norm" | "update_ratio" | "eval" => 3,
        "total_norm" | "loss" | "lr" | "epoch_end" | "run_end" => 2,
        "non_finite" | "diagnosis" => 3,
        "control" => 4,
        "run_start" => 1,
        _ => return Err(unknown(&msg.addr)),
    };
    if msg.args.len() < positional {
        return Err(BadInput::new(
            BadKind::OscArgCount,
            format!(
                "{} needs {positional} arguments, got {}",
                msg.addr,
                msg.args.len()
            ),
        ));
    }
    let (pos, named) = msg.args.split_at(positional);
    if named.len() % 2 != 0 {
        return Err(BadInput::new(
            BadKind::OscArgCount,
            format!(
                "{}: named arguments come in pairs (s:key value), got an odd number",
                msg.addr
            ),
        ));
    }
    let step = uint(&pos[positional - 1], "step")?;
    let mut epoch = 0u32;
    let mut named_layer = None;
    let payload = match kind {
        "grad_norm" | "weight_norm" | "update_ratio" => {
            let layer = Layer {
                name: name(&pos[0], "layer")?.into(),
                index: None,
            };
            let value = float(&pos[1], "value")?;
            match kind {
                "grad_norm" => Payload::GradNorm { layer, value },
                "weight_norm" => Payload::WeightNorm { layer, value },
                _ => Payload::UpdateRatio { layer, value },
            }
        }
        "total_norm" => Payload::TotalNorm {
            value: float(&pos[0], "value")?,
        },
        "loss" => Payload::Loss {
            value: float(&pos[0], "value")?,
        },
        "lr" => Payload::Lr {
            value: float(&pos[0], "value")?,
        },
        "eval" => Payload::Eval {
            name: name(&pos[0], "name")?,
            value: float(&pos[1], "value")?,
        },
        "non_finite" => Payload::NonFinite {
            layer: None,
            quantity: match text(&pos[0], "quantity")? {
                "grad" => Quantity::Grad,
                "weight" => Quantity::Weight,
                "loss" => Quantity::Loss,
                other => return Err(bad_value("quantity", other, "grad, weight or loss")),
            },
            state: match text(&pos[1], "state")? {
                "nan" => NonFiniteKind::Nan,
                "inf" => NonFiniteKind::Inf,
                other => return Err(bad_value("state", other, "nan or inf")),
            },
        },
        "epoch_end" => {
            epoch = uint32(&pos[0], "epoch")?;
            Payload::EpochEnd
        }
        "run_start" => Payload::RunStart {
            info: Box::default(),
        },
        "diagnosis" => {
            let which = text(&pos[0], "diagnosis")?;
            Payload::Diagnosis {
                diagnosis: DiagnosisKind::parse(which).ok_or_else(|| {
                    bad_value("diagnosis", which, &DiagnosisKind::NAMES.join(", "))
                })?,
                layers: Vec::new(),
                reason: reason_text(&pos[1])?,
            }
        }
        "control" => Payload::Control {
            control: name(&pos[0], "control")?.into(),
            target: name(&pos[1], "target")?.into(),
            value: float(&pos[2], "value")?,
            source: Arc::from("osc"),
        },
        _ => Payload::RunEnd {
            reason: {
                let reason = text(&pos[0], "reason")?;
                EndReason::parse(reason)
                    .ok_or_else(|| bad_value("reason", reason, &EndReason::NAMES.join(", ")))?
            },
            coalesced: 0,
        },
    };
    let mut event = Event::new(step, epoch, 0.0, payload);
    for pair in named.chunks_exact(2) {
        let key = text(&pair[0], "a named argument's key")?;
        let v = &pair[1];
        match key {
            "epoch" => event.epoch = uint32(v, "epoch")?,
            "time" => event.time = float(v, "time")?,
            "run" => event.run = Some(Arc::from(name(v, "run")?)),
            "rank" => event.rank = Some(uint32(v, "rank")?),
            "layer" => named_layer = Some(name(v, "layer")?),
            "layers" => {
                if let Payload::Diagnosis { layers, .. } = &mut event.payload {
                    *layers = layer_list(v)?;
                }
            }
            "layer_index" => {
                let index = uint32(v, "layer_index")?;
                set_layer_index(&mut event.payload, index);
            }
            "coalesced" => {
                if let Payload::RunEnd { coalesced, .. } = &mut event.payload {
                    *coalesced = uint(v, "coalesced")?;
                }
            }
            "source" => {
                if let Payload::Control { source, .. } = &mut event.payload {
                    *source = name(v, "source")?.into();
                }
            }
            other => {
                if let Payload::RunStart { info } = &mut event.payload {
                    run_info_field(info, other, v)?;
                }
            }
        }
    }
    if !event.time.is_finite() {
        return Err(bad_value("time", "not finite", "Unix seconds"));
    }
    if let (Payload::NonFinite { layer, .. }, Some(n)) = (&mut event.payload, named_layer) {
        *layer = Some(Layer {
            name: n.into(),
            index: None,
        });
    }
    Ok(event)
}

/// Most layers one diagnosis may name.
pub const MAX_DIAGNOSIS_LAYERS: usize = 256;
/// Longest diagnosis reason accepted, bytes.
pub const MAX_REASON_LEN: usize = 1024;

fn reason_text(v: &OscType) -> Result<String, BadInput> {
    let t = text(v, "reason")?;
    if t.len() > MAX_REASON_LEN {
        return Err(BadInput::new(
            BadKind::NameTooLong,
            format!(
                "field `reason` is {} bytes long, at most {MAX_REASON_LEN} are accepted",
                t.len()
            ),
        ));
    }
    Ok(t.to_string())
}

/// `layers` of a diagnosis: names separated by commas.
fn layer_list(v: &OscType) -> Result<Vec<Arc<str>>, BadInput> {
    let t = text(v, "layers")?;
    let names: Vec<&str> = t.split(',').filter(|n| !n.is_empty()).collect();
    if names.len() > MAX_DIAGNOSIS_LAYERS {
        return Err(BadInput::new(
            BadKind::BadValue,
            format!(
                "field `layers` names {} layers, at most {MAX_DIAGNOSIS_LAYERS} are accepted",
                names.len()
            ),
        ));
    }
    names
        .into_iter()
        .map(|n| name(&OscType::String(n.to_string()), "layers").map(Arc::from))
        .collect()
}

fn set_layer_index(payload: &mut Payload, index: u32) {
    match payload {
        Payload::GradNorm { layer, .. }
        | Payload::WeightNorm { layer, .. }
        | Payload::UpdateRatio { layer, .. } => layer.index = Some(index),
        _ => {}
    }
}

fn run_info_field(info: &mut RunInfo, key: &str, v: &OscType) -> Result<(), BadInput> {
    match key {
        "model" => info.model = text(v, key)?.to_string(),
        "optimizer" => info.optimizer = text(v, key)?.to_string(),
        "dataset" => info.dataset = text(v, key)?.to_string(),
        "device" => info.device = text(v, key)?.to_string(),
        "lr" => info.lr = float(v, key)?,
        "batch_size" => info.batch_size = uint32(v, key)?,
        "steps" => info.steps = Some(uint(v, key)?),
        "seed" => info.seed = Some(uint(v, key)?),
        "control_port" => {
            let n = uint(v, key)?;
            let port = u16::try_from(n).ok().filter(|p| *p > 0).ok_or_else(|| {
                BadInput::new(
                    BadKind::BadValue,
                    format!("`{key}` must be a port, 1 to 65535, found {n}"),
                )
            })?;
            info.control_port = Some(port);
        }
        "layers" => {
            info.layers = text(v, key)?
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        }
        _ => {}
    }
    Ok(())
}

fn unknown(addr: &str) -> BadInput {
    BadInput::new(
        BadKind::UnknownOscAddress,
        format!(
            "unknown address {:?}; expected {PREFIX}<kind> with kind one of {}",
            super::decode::excerpt(addr.as_bytes()),
            crate::event::KINDS.join(", ")
        ),
    )
}

fn bad_value(field: &str, found: &str, expected: &str) -> BadInput {
    BadInput::new(
        BadKind::BadValue,
        format!(
            "`{field}`: {:?} is not one of {expected}",
            super::decode::excerpt(found.as_bytes())
        ),
    )
}

fn wrong_type(field: &str, expected: &str, found: &OscType) -> BadInput {
    BadInput::new(
        BadKind::OscArgType,
        format!(
            "`{field}` must be {expected}, found {}",
            osc_type_name(found)
        ),
    )
}

fn osc_type_name(t: &OscType) -> &'static str {
    match t {
        OscType::Int(_) => "int32",
        OscType::Float(_) => "float32",
        OscType::String(_) => "a string",
        OscType::Blob(_) => "a blob",
        OscType::Time(_) => "a time tag",
        OscType::Long(_) => "int64",
        OscType::Double(_) => "float64",
        OscType::Char(_) => "a char",
        OscType::Color(_) => "a color",
        OscType::Midi(_) => "a MIDI message",
        OscType::Bool(_) => "a boolean",
        OscType::Array(_) => "an array",
        OscType::Nil => "nil",
        OscType::Inf => "Inf",
    }
}

fn text<'a>(v: &'a OscType, field: &str) -> Result<&'a str, BadInput> {
    match v {
        OscType::String(s) => Ok(s),
        other => Err(wrong_type(field, "a string", other)),
    }
}

fn name(v: &OscType, field: &str) -> Result<String, BadInput> {
    let s = text(v, field)?;
    if s.len() > MAX_NAME_LEN {
        return Err(BadInput::new(
            BadKind::NameTooLong,
            format!(
                "`{field}` is {} bytes long, at most {MAX_NAME_LEN} are accepted",
                s.len()
            ),
        ));
    }
    Ok(s.to_string())
}

fn uint(v: &OscType, field: &str) -> Result<u64, BadInput> {
    let n = match v {
        OscType::Int(n) => i64::from(*n),
        OscType::Long(n) => *n,
        other => return Err(wrong_type(field, "int32 or int64", other)),
    };
    u64::try_from(n).map_err(|_| {
        BadInput::new(
            BadKind::BadValue,
            format!("`{field}` must not be negative, found {n}"),
        )
    })
}

fn uint32(v: &OscType, field: &str) -> Result<u32, BadInput> {
    let n = uint(v, field)?;
    u32::try_from(n).map_err(|_| {
        BadInput::new(
            BadKind::BadValue,
            format!("`{field}` must be below 2^32, found {n}"),
        )
    })
}

fn float(v: &OscType, field: &str) -> Result<f64, BadInput> {
    match v {
        OscType::Float(x) => Ok(f64::from(*x)),
        OscType::Double(x) => Ok(*x),
        OscType::Int(n) => Ok(f64::from(*n)),
        OscType::Long(n) => Ok(*n as f64),
        OscType::Inf => Ok(f64::INFINITY),
        OscType::String(s) => match s.as_str() {
            "NaN" | "nan" => Ok(f64::NAN),
            "Infinity" | "inf" | "+Infinity" => Ok(f64::INFINITY),
            "-Infinity" | "-inf" => Ok(f64::NEG_INFINITY),
            other => Err(BadInput::new(
                BadKind::NonNumericValue,
                format!(
                    "`{field}`: expected a number, found the string {:?}",
                    super::decode::excerpt(other.as_bytes())
                ),
            )),
        },
        other => Err(wrong_type(field, "a number", other)),
    }
}

/// The OSC message of the scheme for `event` (its inverse is [`decode_osc_message`]).
/// Values go as float64, so nothing is lost.
pub fn encode_osc_message(event: &Event) -> OscMessage {
    let s = |t: &str| OscType::String(t.to_string());
    let int = |n: u64| OscType::Long(n.min(i64::MAX as u64) as i64);
    let mut args = Vec::new();
    let mut named: Vec<(&str, OscType)> = Vec::new();
    match &event.payload {
        Payload::GradNorm { layer, value }
        | Payload::WeightNorm { layer, value }
        | Payload::UpdateRatio { layer, value } => {
            args.push(s(&layer.name));
            args.push(OscType::Double(*value));
            if let Some(i) = layer.index {
                named.push(("layer_index", int(i.into())));
            }
        }
        Payload::TotalNorm { value } | Payload::Loss { value } | Payload::Lr { value } => {
            args.push(OscType::Double(*value))
        }
        Payload::Eval { name, value } => {
            args.push(s(name));
            args.push(OscType::Double(*value));
        }
        Payload::NonFinite {
            layer,
            quantity,
            state,
        } => {
            args.push(s(match quantity {
                Quantity::Grad => "grad",
                Quantity::Weight => "weight",
                Quantity::Loss => "loss",
            }));
            args.push(s(match state {
                NonFiniteKind::Nan => "nan",
                NonFiniteKind::Inf => "inf",
            }));
            if let Some(l) = layer {
                named.push(("layer", s(&l.name)));
            }
        }
        Payload::EpochEnd => args.push(int(event.epoch.into())),
        Payload::RunStart { info } => {
            named.push(("model", s(&info.model)));
            named.push(("optimizer", s(&info.optimizer)));
            named.push(("lr", OscType::Double(info.lr)));
            named.push(("batch_size", int(info.batch_size.into())));
            named.push(("layers", s(&info.layers.join(","))));
            if !info.dataset.is_empty() {
                named.push(("dataset", s(&info.dataset)));
            }
            if !info.device.is_empty() {
                named.push(("device", s(&info.device)));
            }
            if let Some(n) = info.steps {
                named.push(("steps", int(n)));
            }
            if let Some(n) = info.seed {
                named.push(("seed", int(n)));
            }
            if let Some(port) = info.control_port {
                named.push(("control_port", int(port.into())));
            }
        }
        Payload::Diagnosis {
            diagnosis,
            layers,
            reason,
        } => {
            args.push(s(diagnosis.name()));
            args.push(s(reason));
            if !layers.is_empty() {
                named.push(("layers", s(&layers.join(","))));
            }
        }
        Payload::RunEnd { reason, coalesced } => {
            args.push(s(reason.name()));
            named.push(("coalesced", int(*coalesced)));
        }
        Payload::Control {
            control,
            source,
            target,
            value,
        } => {
            args.push(s(control));
            args.push(s(target));
            args.push(OscType::Double(*value));
            named.push(("source", s(source)));
        }
    }
    args.push(int(event.step));
    named.push(("epoch", int(event.epoch.into())));
    named.push(("time", OscType::Double(event.time)));
    if let Some(run) = &event.run {
        named.push(("run", s(run)));
    }
    if let Some(rank) = event.rank {
        named.push(("rank", int(rank.into())));
    }
    for (k, v) in named {
        args.push(s(k));
        args.push(v);
    }
    OscMessage {
        addr: format!("{PREFIX}{}", event.payload.kind()),
        args,
    }
}

/// `events` as one encoded OSC packet: a message for one event, a bundle for several.
pub fn encode_osc_packet(events: &[Event]) -> Vec<u8> {
    let packet = if let [one] = events {
        OscPacket::Message(encode_osc_message(one))
    } else {
        OscPacket::Bundle(OscBundle {
            timetag: OscTime::from((0, 1)),
            content: events
                .iter()
                .map(|e| OscPacket::Message(encode_osc_message(e)))
                .collect(),
        })
    };
    rosc::encoder::encode(&packet).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(addr: &str, args: Vec<OscType>) -> OscMessage {
        OscMessage {
            addr: addr.into(),
            args,
        }
    }

    #[test]
    fn the_documented_short_forms_decode() {
        let e = decode_osc_message(&msg(
            "/sonograd/grad_norm",
            vec![
                OscType::String("fc1".into()),
                OscType::Float(0.5),
                OscType::Int(7),
                OscType::String("rank".into()),
                OscType::Int(2),
            ],
        ))
        .unwrap();
        assert_eq!(e.step, 7);
        assert_eq!(e.rank, Some(2));
        assert_eq!(e.payload.layer().unwrap().name.as_ref(), "fc1");
        assert_eq!(e.payload.value(), Some(0.5));
        let e = decode_osc_message(&msg(
            "/sonograd/loss",
            vec![OscType::String("NaN".into()), OscType::Long(3)],
        ))
        .unwrap();
        assert!(e.payload.value().unwrap().is_nan());
    }

    #[test]
    fn run_start_announces_its_control_port() {
        let info = RunInfo {
            model: "mlp".into(),
            control_port: Some(9200),
            ..RunInfo::default()
        };
        let event = Event::new(
            0,
            0,
            1.0e9,
            Payload::RunStart {
                info: Box::new(info.clone()),
            },
        );
        let back = decode_osc_message(&encode_osc_message(&event)).unwrap();
        let Payload::RunStart { info: got } = &back.payload else {
            panic!("{back:?}")
        };
        assert_eq!(got.control_port, Some(9200));
        assert_eq!(got.model, "mlp");
        for bad in [0, 70_000, -1] {
            let m = msg(
                "/sonograd/run_start",
                vec![
                    OscType::Int(0),
                    OscType::String("control_port".into()),
                    OscType::Int(bad),
                ],
            );
            assert_eq!(decode_osc_message(&m).unwrap_err().kind, BadKind::BadValue);
        }
    }

    #[test]
    fn bad_messages_are_categorised() {
        let cases = [
            (msg("/other/loss", vec![]), BadKind::UnknownOscAddress),
            (msg("/sonograd/wobble", vec![]), BadKind::UnknownOscAddress),
            (
                msg("/sonograd/loss", vec![OscType::Float(1.0)]),
                BadKind::OscArgCount,
            ),
            (
                msg(
                    "/sonograd/loss",
                    vec![OscType::Float(1.0), OscType::Float(2.0)],
                ),
                BadKind::OscArgType,
            ),
            (
                msg(
                    "/sonograd/loss",
                    vec![OscType::Float(1.0), OscType::Int(-2)],
                ),
                BadKind::BadValue,
            ),
            (
                msg(
                    "/sonograd/loss",
                    vec![OscType::String("lots".into()), OscType::Int(2)],
                ),
                BadKind::NonNumericValue,
            ),
            (
                msg(
                    "/sonograd/loss",
                    vec![
                        OscType::Float(1.0),
                        OscType::Int(2),
                        OscType::String("rank".into()),
                    ],
                ),
                BadKind::OscArgCount,
            ),
        ];
        for (m, kind) in cases {
            assert_eq!(decode_osc_message(&m).expect_err(&m.addr).kind, kind, "{m}");
        }
        let mut got = Vec::new();
        decode_osc_packet(b"hello world!", &mut |r| got.push(r.map_err(|b| b.kind)));
        assert_eq!(got, vec![Err(BadKind::NotOsc)]);
    }

    #[test]
    fn deep_bundles_are_refused() {
        let mut packet = OscPacket::Message(msg("/sonograd/lr", vec![]));
        for _ in 0..(MAX_BUNDLE_DEPTH + 2) {
            packet = OscPacket::Bundle(OscBundle {
                timetag: OscTime::from((0, 1)),
                content: vec![packet],
            });
        }
        let bytes = rosc::encoder::encode(&packet).unwrap();
        let mut got = Vec::new();
        decode_osc_packet(&bytes, &mut |r| got.push(r.map_err(|b| b.kind)));
        assert_eq!(got, vec![Err(BadKind::OscTooDeep)]);
    }
}
