//! The listener as a real process on real sockets: a corpus of bad inputs mixed with good
//! events over UDP JSON, UDP OSC and stdin; every good event must be recorded and every bad
//! one counted in its category.

use crate::common::listen as common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::UdpSocket;
use std::time::Duration;

use rosc::{OscBundle, OscMessage, OscPacket, OscTime, OscType};
use sonograd::event::{Event, Layer, NonFiniteKind, Payload, Quantity};
use sonograd::source::listen::osc_scheme::{encode_osc_message, encode_osc_packet};

/// Good events: step encodes (input, index) so each can be found in the recording.
fn good(input: u64, i: u64) -> Event {
    let step = input * 1000 + i;
    let layer = Layer::new(format!("fc{}", i % 4 + 1), (i % 4) as u32);
    let payload = match i % 6 {
        0 => Payload::GradNorm {
            layer,
            value: 0.5 + i as f64,
        },
        1 => Payload::Loss {
            value: if i == 7 { f64::NAN } else { 2.0 },
        },
        2 => Payload::TotalNorm { value: 1e300 },
        3 => Payload::NonFinite {
            layer: Some(layer),
            quantity: Quantity::Grad,
            state: NonFiniteKind::Inf,
        },
        4 => Payload::Lr { value: 0.1 },
        _ => Payload::Eval {
            name: "accuracy".into(),
            value: 0.9,
        },
    };
    let mut e = Event::new(step, 0, 1_800_000_000.0 + i as f64, payload);
    e.rank = Some((i % 2) as u32);
    e.run = Some("exp".into());
    e
}

fn osc(addr: &str, args: Vec<OscType>) -> Vec<u8> {
    rosc::encoder::encode(&OscPacket::Message(OscMessage {
        addr: addr.into(),
        args,
    }))
    .unwrap()
}

#[test]
fn good_events_get_through_and_every_bad_input_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec.jsonl");
    let listener = common::start(
        &[
            "--udp",
            "127.0.0.1:0",
            "--osc",
            "127.0.0.1:0",
            "--stdin",
            "--record",
            rec.to_str().unwrap(),
            "--max-datagram",
            "4096",
            "--max-series",
            "8",
        ],
        3,
    );
    let udp = listener.addr("udp-json");
    let osc_addr = listener.addr("udp-osc");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let send = |to, bytes: &[u8]| {
        sock.send_to(bytes, to).unwrap();
        std::thread::sleep(Duration::from_micros(200));
    };
    let mut expected_bad: BTreeMap<&str, u64> = BTreeMap::new();
    let mut kinds_of_bad = 0;
    let mut bad = |cat: &'static str| {
        *expected_bad.entry(cat).or_default() += 1;
        kinds_of_bad += 1;
    };

    // --- UDP JSON: bad inputs, one per datagram, good events in between -------------------
    let deep = format!("{}{}", "[".repeat(300), "]".repeat(300));
    let long_name = format!(
        r#"{{"v":1,"step":1,"kind":"grad_norm","layer":"{}","value":1}}"#,
        "x".repeat(300)
    );
    let json_bad: Vec<(Vec<u8>, &str)> = vec![
        (b"hello".to_vec(), "not_json"),
        (br#"{"v":1,"step":"#.to_vec(), "not_json"),
        (b"\xff\xfe\x00garbage".to_vec(), "not_utf8"),
        (b"[1,2,3]".to_vec(), "not_an_object"),
        (b"42".to_vec(), "not_an_object"),
        (b"null".to_vec(), "not_an_object"),
        (
            br#"{"step":1,"kind":"loss","value":1}"#.to_vec(),
            "missing_version",
        ),
        (
            br#"{"v":99,"step":1,"kind":"loss","value":1}"#.to_vec(),
            "newer_version",
        ),
        (
            br#"{"v":"1","step":1,"kind":"loss","value":1}"#.to_vec(),
            "wrong_type",
        ),
        (
            br#"{"v":1,"step":1,"kind":"wobble","value":1}"#.to_vec(),
            "unknown_kind",
        ),
        (
            br#"{"v":1,"step":1,"kind":5,"value":1}"#.to_vec(),
            "wrong_type",
        ),
        (
            br#"{"v":1,"step":1,"kind":"grad_norm","value":1}"#.to_vec(),
            "missing_field",
        ),
        (
            br#"{"v":1,"step":1,"kind":"loss"}"#.to_vec(),
            "missing_field",
        ),
        (
            br#"{"v":1,"step":"ten","kind":"loss","value":1}"#.to_vec(),
            "wrong_type",
        ),
        (
            br#"{"v":1,"step":1.5,"kind":"loss","value":1}"#.to_vec(),
            "wrong_type",
        ),
        (
            br#"{"v":1,"step":-1,"kind":"loss","value":1}"#.to_vec(),
            "bad_value",
        ),
        (
            br#"{"v":1,"step":1e30,"kind":"loss","value":1}"#.to_vec(),
            "wrong_type",
        ),
        (
            br#"{"v":1,"step":1,"kind":"loss","value":"lots"}"#.to_vec(),
            "non_numeric_value",
        ),
        (
            br#"{"v":1,"step":1,"kind":"loss","value":1e400}"#.to_vec(),
            "number_out_of_range",
        ),
        (
            br#"{"v":1,"step":1,"kind":"loss","value":true}"#.to_vec(),
            "wrong_type",
        ),
        (
            // Python's bare `NaN` is read; a lower-case `nan` is no word JSON writers use.
            br#"{"v":1,"step":1,"kind":"loss","value":nan}"#.to_vec(),
            "not_json",
        ),
        (long_name.into_bytes(), "name_too_long"),
        (
            br#"{"v":1,"step":1,"kind":"non_finite","quantity":"grad","state":"maybe"}"#.to_vec(),
            "bad_value",
        ),
        (
            br#"{"v":1,"step":1,"kind":"run_end","reason":"bored"}"#.to_vec(),
            "bad_value",
        ),
        (
            br#"{"v":1,"step":1,"kind":"loss","value":1,"rank":-1}"#.to_vec(),
            "bad_value",
        ),
        (
            br#"{"v":1,"step":1,"kind":"loss","value":1,"epoch":1099511627776}"#.to_vec(),
            "bad_value",
        ),
        (deep.into_bytes(), "not_json"),
        (Vec::new(), "empty"),
        (vec![b'{'; 5000], "datagram_too_large"),
    ];
    for (i, (bytes, cat)) in json_bad.iter().enumerate() {
        send(udp, bytes);
        bad(cat);
        send(udp, good(0, i as u64).to_json_line().as_bytes());
    }
    // Several lines in one datagram: good, bad, good.
    let multi = format!(
        "{}\nnot json\n{}\n",
        good(0, 29).to_json_line(),
        good(0, 30).to_json_line()
    );
    send(udp, multi.as_bytes());
    bad("not_json");
    let json_good = json_bad.len() as u64 + 2;

    // --- OSC ---------------------------------------------------------------------------
    let f = |x: f32| OscType::Float(x);
    let s = |x: &str| OscType::String(x.into());
    let mut deep_bundle = OscPacket::Message(encode_osc_message(&good(1, 99)));
    for _ in 0..12 {
        deep_bundle = OscPacket::Bundle(OscBundle {
            timetag: OscTime::from((0, 1)),
            content: vec![deep_bundle],
        });
    }
    let osc_bad: Vec<(Vec<u8>, &str)> = vec![
        (b"definitely not osc".to_vec(), "not_osc"),
        (b"/sonograd/loss\0\0,f".to_vec(), "not_osc"),
        (
            osc("/foo", vec![f(1.0), OscType::Int(1)]),
            "unknown_osc_address",
        ),
        (
            osc("/sonograd/wobble", vec![f(1.0), OscType::Int(1)]),
            "unknown_osc_address",
        ),
        (osc("/sonograd/loss", vec![f(1.0)]), "osc_arg_count"),
        (osc("/sonograd/loss", vec![f(1.0), f(2.0)]), "osc_arg_type"),
        (
            osc(
                "/sonograd/grad_norm",
                vec![OscType::Int(3), f(1.0), OscType::Int(1)],
            ),
            "osc_arg_type",
        ),
        (
            osc("/sonograd/loss", vec![f(1.0), OscType::Int(1), s("rank")]),
            "osc_arg_count",
        ),
        (
            osc("/sonograd/loss", vec![s("lots"), OscType::Int(1)]),
            "non_numeric_value",
        ),
        (
            osc("/sonograd/loss", vec![f(1.0), OscType::Int(-5)]),
            "bad_value",
        ),
        (
            osc("/sonograd/run_end", vec![s("bored"), OscType::Int(1)]),
            "bad_value",
        ),
        (rosc::encoder::encode(&deep_bundle).unwrap(), "osc_too_deep"),
    ];
    for (i, (bytes, cat)) in osc_bad.iter().enumerate() {
        send(osc_addr, bytes);
        bad(cat);
        send(osc_addr, &encode_osc_packet(&[good(1, i as u64)]));
    }
    // A bundle of two good messages and a bad one.
    let mut bundle = rosc::encoder::encode(&OscPacket::Bundle(OscBundle {
        timetag: OscTime::from((0, 1)),
        content: vec![
            OscPacket::Message(encode_osc_message(&good(1, 20))),
            OscPacket::Message(OscMessage {
                addr: "/nope".into(),
                args: vec![],
            }),
            OscPacket::Message(encode_osc_message(&good(1, 21))),
        ],
    }))
    .unwrap();
    send(osc_addr, &bundle);
    bad("unknown_osc_address");
    // The documented short form, float32 value and int32 step.
    bundle = osc(
        "/sonograd/grad_norm",
        vec![
            s("fc2"),
            f(0.25),
            OscType::Int(1022),
            s("rank"),
            OscType::Int(1),
            s("run"),
            s("exp"),
        ],
    );
    send(osc_addr, &bundle);
    let osc_good = osc_bad.len() as u64 + 3;

    // --- stdin -------------------------------------------------------------------------
    let mut stdin_text = Vec::new();
    let stdin_bad: Vec<(Vec<u8>, &str)> = vec![
        (b"this is not json".to_vec(), "not_json"),
        (vec![b'a'; 70_000], "line_too_long"),
        (b"\x00\x01\x02\xff".to_vec(), "not_utf8"),
        (
            br#"{"v":1,"step":1,"kind":"eval","value":1}"#.to_vec(),
            "missing_field",
        ),
    ];
    for (i, (bytes, cat)) in stdin_bad.iter().enumerate() {
        stdin_text.extend_from_slice(bytes);
        stdin_text.push(b'\n');
        bad(cat);
        stdin_text.extend_from_slice(good(2, i as u64).to_json_line().as_bytes());
        stdin_text.push(b'\n');
    }
    // A foreign trainer's minimal line (no time: gets the receive time).
    stdin_text.extend_from_slice(
        b"{\"v\":1,\"step\":2100,\"kind\":\"grad_norm\",\"layer\":\"fc3\",\"value\":3}\r\n",
    );
    let stdin_good = stdin_bad.len() as u64 + 1;
    let mut listener = listener;
    listener
        .child
        .stdin
        .as_mut()
        .unwrap()
        .write_all(&stdin_text)
        .unwrap();
    drop(listener.child.stdin.take());

    // --- too many distinct layers (limit 8: fc1..fc4 are known, 4 more fit) ---------------
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..6u64 {
        let e = Event::new(
            3000 + i,
            0,
            1_800_000_000.0,
            Payload::GradNorm {
                layer: Layer::new(format!("extra{i}"), 9),
                value: 1.0,
            },
        );
        send(udp, e.to_json_line().as_bytes());
    }
    bad("too_many_series");
    bad("too_many_series");
    let extra_good = 4;

    std::thread::sleep(Duration::from_millis(500));
    let lines = listener.stop();

    // --- check ---------------------------------------------------------------------------
    assert!(
        kinds_of_bad >= 30,
        "corpus has only {kinds_of_bad} bad inputs"
    );
    let (diagnoses, recorded): (Vec<Event>, Vec<Event>) = std::fs::read_to_string(&rec)
        .unwrap()
        .lines()
        .map(|l| Event::from_json_line(l).unwrap())
        .partition(|e| e.payload.kind() == "diagnosis");
    // The detector adds its own events: here the first non-finite value of a stream, and the
    // explosion of the stream whose total norm jumps to 1e300, each on a step where that stream
    // (run and rank) really sent such values.
    assert!(!diagnoses.is_empty());
    for d in &diagnoses {
        let line = d.to_json_line();
        assert!(
            line.contains(r#""diagnosis":"non_finite""#)
                || (line.contains(r#""diagnosis":"exploding""#)
                    && recorded.iter().any(|e| e.run == d.run
                        && e.step == d.step
                        && matches!(e.payload, Payload::TotalNorm { value } if value > 1e100))),
            "{d:?}"
        );
        if line.contains(r#""diagnosis":"non_finite""#) {
            assert!(
                recorded.iter().any(|e| e.step == d.step
                    && e.run == d.run
                    && e.rank == d.rank
                    && (e.payload.kind() == "non_finite"
                        || e.payload.value().is_some_and(|v| !v.is_finite()))),
                "{d:?}"
            );
        }
    }
    let steps: BTreeSet<u64> = recorded.iter().map(|e| e.step).collect();
    // Each NaN loss came without an alarm (`good` sends only gradient alarms): listen made
    // one after it (other inputs' events may come between), for the same sender and step.
    let nan_losses: Vec<usize> = (0..recorded.len())
        .filter(|&i| matches!(recorded[i].payload, Payload::Loss { value } if value.is_nan()))
        .collect();
    assert!(nan_losses.len() >= 2, "{recorded:?}");
    for &i in &nan_losses {
        let value = &recorded[i];
        assert!(
            recorded[i + 1..].iter().any(|alarm| matches!(
                alarm.payload,
                Payload::NonFinite {
                    layer: None,
                    quantity: Quantity::Loss,
                    state: NonFiniteKind::Nan
                }
            ) && (alarm.step, &alarm.run, alarm.rank)
                == (value.step, &value.run, value.rank)),
            "no alarm after {value:?}"
        );
    }
    let made = recorded
        .iter()
        .filter(|e| {
            matches!(
                e.payload,
                Payload::NonFinite {
                    quantity: Quantity::Loss,
                    ..
                }
            )
        })
        .count();
    assert_eq!(made, nan_losses.len());
    let made = made as u64;
    let expected_total = json_good + osc_good + stdin_good + extra_good + made;
    assert_eq!(recorded.len() as u64, expected_total, "stderr: {lines:#?}");
    for i in 0..json_good {
        assert!(steps.contains(&i), "udp-json good event {i} missing");
    }
    for i in (0..osc_bad.len() as u64).chain([20, 21, 22]) {
        assert!(steps.contains(&(1000 + i)), "osc good event {i} missing");
    }
    for i in (0..stdin_bad.len() as u64).chain([100]) {
        assert!(steps.contains(&(2000 + i)), "stdin good event {i} missing");
    }
    // Values survive: NaN as text, huge numbers, tags.
    let nan = recorded.iter().find(|e| e.step == 7).unwrap();
    assert!(nan.payload.value().unwrap().is_nan());
    let huge = recorded.iter().find(|e| e.step == 1002).unwrap();
    assert_eq!(huge.payload.value(), Some(1e300));
    assert_eq!(huge.run.as_deref(), Some("exp"));
    assert_eq!(huge.rank, Some(0));

    let counts = common::bad_counts(&lines);
    let expected: BTreeMap<String, u64> = expected_bad
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    let got: BTreeMap<String, u64> = counts.into_iter().collect();
    assert_eq!(got, expected, "stderr: {lines:#?}");
    let acc = common::accounting(&lines);
    assert_eq!(acc["events"], expected_total);
    assert_eq!(acc["routed"], expected_total);
    assert_eq!(acc["bad"], kinds_of_bad);
    assert_eq!(acc["kernel_drops"], 0);
    // Warnings are rate limited: at most one line per category.
    let warnings = lines.iter().filter(|l| l.starts_with("warning: ")).count();
    assert!(warnings <= expected.len() + 1, "{warnings} warnings");
}

#[test]
fn bad_flags_name_what_is_wrong() {
    let out = common::listen_command()
        .args(["--udp", "nine"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--udp: \"nine\" is not an address"), "{err}");
    let out = common::listen_command().output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nothing to listen to"), "{err}");
}
