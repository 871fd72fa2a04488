//! The OSC output against liblo's `oscdump`: every message of a replay arrives, as the
//! monitor shows it, in a bundle time-tagged `latency_ms` ahead (UDP), and over TCP (SLIP).

use crate::common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sonograd::mapping::Mapping;
use sonograd::message::Message;
use sonograd::output::osc::OscOutput;
use sonograd::output::Output;
use sonograd::pipeline::monitor;

/// "ADDR ARG..." of a monitor line ("  0.1s step 1 loss  sc /sonograd/loss 550 1  <- ...").
fn monitor_words(msg: &Message, m: &Mapping) -> Vec<String> {
    let line = monitor::format(msg, m);
    let body = line.split("  <- ").next().unwrap();
    let at = body.find(" /").expect("an OSC address");
    body[at + 1..]
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Compares an oscdump line "TAG ADDR TYPES ARG..." with the monitor's words.
fn same(dump: &str, words: &[String]) -> bool {
    let d: Vec<&str> = dump.split_whitespace().collect();
    if d.len() != words.len() + 2 || d[1] != words[0] {
        return false;
    }
    d[3..]
        .iter()
        .zip(&words[1..])
        .all(|(a, b)| match (a.parse::<f64>(), b.parse::<f64>()) {
            (Ok(x), Ok(y)) => (x - y).abs() <= 1e-5 * y.abs().max(1.0),
            _ => a == b,
        })
}

fn tag_secs(dump: &str) -> f64 {
    let tag = dump.split_whitespace().next().unwrap();
    let (s, f) = tag.split_once('.').unwrap();
    let s = u32::from_str_radix(s, 16).unwrap() as f64;
    let f = u32::from_str_radix(f, 16).unwrap() as f64 / 4294967296.0;
    s + f - 2_208_988_800.0
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn run(protocol: &str) {
    if !common::require_peers(&["oscdump"]) {
        return;
    }
    let port = common::free_udp_port();
    let url = if protocol == "tcp" {
        format!("osc.tcp://:{port}")
    } else {
        port.to_string()
    };
    let (_dump, lines) = common::oscdump(&url);
    let mapping = common::config_with(
        "supercollider.toml",
        "port = 57120\nprotocol = \"udp\"",
        &format!("port = {port}\nprotocol = \"{protocol}\""),
    );
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("run.jsonl");
    common::write_recording(&rec, 20);
    let msgs = common::replay(&rec, &mapping, 0.1);
    assert!(
        msgs.len() > 40,
        "the replay routes messages ({})",
        msgs.len()
    );

    let mut out = OscOutput::open(&mapping.outputs[0].kind, "sc").unwrap();
    // oscdump needs a moment to listen: probe until a message arrives.
    let probe = &msgs[0];
    let arrived = common::wait_for(Duration::from_secs(5), || {
        out.send(probe, &mapping);
        out.tick();
        std::thread::sleep(Duration::from_millis(50));
        !lines.lock().unwrap().is_empty()
    });
    assert!(arrived, "oscdump received nothing on {url}");
    std::thread::sleep(Duration::from_millis(100));
    let skip = lines.lock().unwrap().len();

    let dropped_before = out.stats().dropped;
    let before = unix_now();
    for m in &msgs {
        out.send(m, &mapping);
        if protocol == "udp" {
            // oscdump is slow at printing: give it time so the socket buffer never overflows.
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    out.tick();
    let after = unix_now();
    assert_eq!(
        out.stats().dropped,
        dropped_before,
        "none dropped at the sender"
    );
    out.close();
    let complete = common::wait_for(Duration::from_secs(5), || {
        lines.lock().unwrap().len() >= skip + msgs.len()
    });
    let got = lines.lock().unwrap()[skip..].to_vec();
    assert!(
        complete,
        "oscdump got {} of {} messages",
        got.len(),
        msgs.len()
    );
    assert_eq!(got.len(), msgs.len(), "nothing extra");
    for (m, line) in msgs.iter().zip(&got) {
        let words = monitor_words(m, &mapping);
        assert!(same(line, &words), "oscdump {line:?} vs monitor {words:?}");
        let t = tag_secs(line);
        assert!(
            t >= before + 0.050 - 0.002 && t <= after + 0.050 + 0.002,
            "bundle time tag {t} not 50 ms ahead of the send ({before}..{after})"
        );
    }
}

#[test]
fn udp_bundles_match_the_monitor() {
    run("udp");
}

#[test]
fn tcp_slip_stream_matches_the_monitor() {
    run("tcp");
}
