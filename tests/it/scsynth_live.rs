//! Direct scsynth mode against a real scsynth under a JACK dummy server: every note sent
//! starts a node (`/n_go`) that ends (`/n_end`), the voice too, and what reaches the
//! speakers (`jack_capture`) is not silent.

use crate::common;

use std::collections::BTreeSet;
use std::net::UdpSocket;
use std::process::Stdio;
use std::time::{Duration, Instant};

use rosc::{OscMessage, OscPacket, OscType};
use sonograd::mapping::schema::{Metric, OscProtocol, SynthParam};
use sonograd::mapping::Mapping;
use sonograd::message::{Action, Message};
use sonograd::output::scsynth::{ScsynthOutput, VOICE_NODE_BASE};
use sonograd::output::Output;

fn msg(step: u64, action: Action) -> Message {
    Message {
        time: step as f64 * 0.1,
        step,
        epoch: 0,
        route: 0,
        output: 0,
        metric: Metric::Loss,
        layer: None,
        raw: 0.0,
        level: 0.5,
        alarm: false,
        action,
    }
}

fn send(sock: &UdpSocket, addr: &str, args: Vec<OscType>) {
    let p = OscPacket::Message(OscMessage {
        addr: addr.into(),
        args,
    });
    sock.send(&rosc::encoder::encode(&p).unwrap()).unwrap();
}

/// Node ids of the `/n_go` and `/n_end` notifications received until `until`.
fn notifications(
    sock: &UdpSocket,
    until: Instant,
    go: &mut BTreeSet<i32>,
    end: &mut BTreeSet<i32>,
) {
    let mut buf = [0u8; 8192];
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        let Ok(n) = sock.recv(&mut buf) else { continue };
        if let Ok((_, OscPacket::Message(m))) = rosc::decoder::decode_udp(&buf[..n]) {
            let id = match m.args.first() {
                Some(OscType::Int(i)) => *i,
                _ => continue,
            };
            match m.addr.as_str() {
                "/n_go" => {
                    go.insert(id);
                }
                "/n_end" => {
                    end.insert(id);
                }
                _ => {}
            }
        }
    }
}

#[test]
fn notes_start_and_end_nodes_and_sound() {
    if !common::require_peers(&["jackd", "jack_wait", "scsynth", "jack_capture"]) {
        return;
    }
    let jack = common::Jack::start("outputs-scsynth");
    let port = common::free_udp_port();
    let mut server = common::Proc(
        jack.command("scsynth")
            .args(["-u", &port.to_string(), "-i", "2", "-o", "2", "-R", "0"])
            .env(
                "SC_JACK_DEFAULT_OUTPUTS",
                "system:playback_1,system:playback_2",
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let ctl = UdpSocket::bind("127.0.0.1:0").unwrap();
    ctl.connect(("127.0.0.1", port)).unwrap();
    ctl.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 1024];
    let up = common::wait_for(Duration::from_secs(10), || {
        send(&ctl, "/notify", vec![OscType::Int(1)]);
        ctl.recv(&mut buf).is_ok()
    });
    assert!(up, "scsynth did not answer /notify");
    std::thread::sleep(Duration::from_millis(100));

    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("capture.wav");
    let mut capture = common::Proc(
        jack.command("jack_capture")
            .args([
                "-d",
                "3",
                "--daemon",
                "-b",
                "16",
                "--port",
                "system:playback*",
                wav.to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let mapping = Mapping {
        description: String::new(),
        outputs: vec![],
        routes: vec![],
        diagnose: Default::default(),
        controls: Default::default(),
    };
    let mut out = ScsynthOutput::open("127.0.0.1", port, OscProtocol::Udp, 0).unwrap();
    let mut expected = BTreeSet::new();
    for (i, note) in [60u8, 64, 67, 72, 76].into_iter().enumerate() {
        expected.insert(out.next_note_id());
        out.send(
            &msg(
                i as u64,
                Action::Note {
                    channel: 1,
                    note,
                    velocity: 100,
                    length_ms: 300,
                },
            ),
            &mapping,
        );
        out.tick();
        std::thread::sleep(Duration::from_millis(150));
    }
    for (i, hz) in [220.0, 330.0, 440.0].into_iter().enumerate() {
        let a = Action::Synth {
            voice: 3,
            param: SynthParam::Pitch,
            value: hz,
            pan: None,
        };
        out.send(&msg(10 + i as u64, a), &mapping);
        out.tick();
        std::thread::sleep(Duration::from_millis(200));
    }
    expected.insert(VOICE_NODE_BASE + 3);
    out.close();

    let (mut go, mut end) = (BTreeSet::new(), BTreeSet::new());
    notifications(
        &ctl,
        Instant::now() + Duration::from_millis(1500),
        &mut go,
        &mut end,
    );
    assert_eq!(go, expected, "/n_go for every note and the voice");
    assert_eq!(end, expected, "/n_end for every note and the voice");

    // jack_capture stops by itself after 3 s.
    let done = common::wait_for(Duration::from_secs(8), || {
        capture.0.try_wait().is_ok_and(|s| s.is_some())
    });
    assert!(done && wav.exists(), "jack_capture did not finish its 3 s");
    // A clean quit removes scsynth's shared memory (/dev/shm/SuperColliderServer_PORT).
    send(&ctl, "/quit", vec![]);
    common::wait_for(Duration::from_secs(3), || {
        matches!(server.0.try_wait(), Ok(Some(_)))
    });
    let (_, l, r) = common::read_wav(&wav);
    let samples = common::mono(&l, &r);
    let peak = samples.iter().fold(0f32, |m, s| m.max(s.abs()));
    assert!(peak > 0.01, "captured audio is silent (peak {peak})");
}
