//! proptest fuzzing of the pure decoders: random bytes and mutated valid inputs never panic,
//! and valid inputs decode back to what was encoded.

use proptest::prelude::*;
use sonograd::event::{DiagnosisKind, Event, Layer, Payload};
use sonograd::source::listen::decode::{decode_json_datagram, decode_json_line};
use sonograd::source::listen::osc_scheme::{decode_osc_packet, encode_osc_packet};

/// Cases per property; `PROPTEST_CASES` overrides.
const CASES: u32 = 4096;

fn sample(step: u64, value: f64, kind: u8, layer: &str, rank: Option<u32>) -> Event {
    let layer = Layer::new(layer, 1);
    let payload = match kind % 5 {
        0 => Payload::GradNorm { layer, value },
        1 => Payload::Loss { value },
        2 => Payload::UpdateRatio { layer, value },
        3 => Payload::Diagnosis {
            diagnosis: DiagnosisKind::ALL[kind as usize % 6],
            layers: vec![layer.name.clone(), "out".into()],
            reason: format!("value {value}"),
        },
        _ => Payload::Eval {
            name: "acc".into(),
            value,
        },
    };
    let mut e = Event::new(step, 3, 1.7e9, payload);
    e.rank = rank;
    e
}

fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    for &(at, op, byte) in edits {
        if bytes.is_empty() {
            bytes.push(byte);
            continue;
        }
        let i = at % bytes.len();
        match op % 4 {
            0 => bytes[i] = byte,
            1 => bytes.insert(i, byte),
            2 => {
                bytes.remove(i);
            }
            _ => bytes.truncate(i),
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_json_line(&bytes);
        decode_json_datagram(&bytes, &mut |_, _| {});
        decode_osc_packet(&bytes, &mut |_| {});
    }

    #[test]
    fn mutated_valid_inputs_never_panic(
        step in 0..=i64::MAX as u64, value in any::<f64>(), kind in any::<u8>(),
        layer in "[a-z0-9._]{1,12}", rank in proptest::option::of(any::<u32>()),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..6),
    ) {
        let e = sample(step, value, kind, &layer, rank);
        let json = e.to_json_line().into_bytes();
        let osc = encode_osc_packet(std::slice::from_ref(&e));
        // Unmutated, both decode back to the event (OSC steps are int64: up to 2^63-1).
        let back = decode_json_line(&json).unwrap();
        prop_assert_eq!(back.step, step);
        let mut from_osc = Vec::new();
        decode_osc_packet(&osc, &mut |r| from_osc.push(r));
        prop_assert_eq!(from_osc.len(), 1);
        let o = from_osc.pop().unwrap().unwrap();
        prop_assert_eq!(o.step, step);
        prop_assert_eq!(o.rank, rank);
        prop_assert_eq!(o.payload.value().map(f64::to_bits), e.payload.value().map(f64::to_bits));
        if matches!(e.payload, Payload::Diagnosis { .. }) {
            // A foreign trainer's diagnosis arrives whole, by JSON and by OSC.
            prop_assert_eq!(&back.payload, &e.payload);
            prop_assert_eq!(&o.payload, &e.payload);
        }
        let _ = decode_json_line(&mutate(json, &edits));
        decode_osc_packet(&mutate(osc, &edits), &mut |_| {});
    }
}
