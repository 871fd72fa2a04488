//! Shared helpers of the peer tests: programs, ports, a JACK dummy server, routing.
#![allow(dead_code)]

use std::io::Write;
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sonograd::event::{Event, Layer, Payload, RunInfo};
use sonograd::mapping::{self, Mapping};
use sonograd::message::Message;
use sonograd::route::Router;
use sonograd::source::replay::Recording;

/// Whether a program is on the PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Skips the test (returns from it) with a printed reason when a program is missing.
#[macro_export]
macro_rules! require {
    ($($prog:expr),+) => {
        $(
            if !common::have($prog) {
                eprintln!("SKIPPED: `{}` is not installed (see REPORT.md for the apt packages)", $prog);
                return;
            }
        )+
    };
}

/// A UDP port that is free right now.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process ended on drop: SIGTERM first (jackd and scsynth then remove their
/// shared-memory registrations; SIGKILLed servers leave them behind, and JACK refuses a
/// ninth server), SIGKILL after a second.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.0.id().to_string()])
                .status();
            let gone = wait_for(Duration::from_secs(2), || {
                matches!(self.0.try_wait(), Ok(Some(_)))
            });
            if !gone {
                let _ = self.0.kill();
            }
        }
        let _ = self.0.wait();
    }
}

/// Waits until `f` is true or `timeout` passes; returns the last value of `f`.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A JACK dummy server under the name `sonograd-outputs-TAG` (set as `JACK_DEFAULT_SERVER`
/// in this process, so call it before any JACK client starts; one such test per binary).
///
/// The name is fixed on purpose: JACK keeps at most 8 servers in its shared registry and
/// reclaims the entry of a dead server only when a server of the same name starts, so
/// names that change every run (a pid) fill the registry ("Too many servers already
/// active") after a few killed runs.
pub struct Jack {
    pub server: Proc,
    pub name: String,
}

impl Jack {
    pub fn start(tag: &str) -> Jack {
        let name = format!("sonograd-outputs-{tag}");
        std::env::set_var("JACK_DEFAULT_SERVER", &name);
        std::env::set_var("JACK_NO_START_SERVER", "1");
        let server = Proc(
            Command::new("jackd")
                .args(["-n", &name, "-r", "-d", "dummy", "-r", "48000", "-p", "256"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("jackd"),
        );
        let ok = Command::new("jack_wait")
            .args(["-w", "-t", "10"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "the JACK dummy server did not start");
        Jack { server, name }
    }
}

/// A mapping from a shipped config of the main crate, with `from` replaced by `to`.
pub fn config_with(name: &str, from: &str, to: &str) -> Mapping {
    let src = std::fs::read_to_string(format!("/work/main/config/{name}")).unwrap();
    assert!(src.contains(from), "{name} has no {from:?}");
    mapping::parse_str(&src.replace(from, to), name).unwrap_or_else(|d| panic!("{d}"))
}

/// Writes a small recording: `steps` steps of a 3-layer run whose gradient norms rise
/// (layer i: 10^(step/steps·4 − 2 + i/2)), a falling loss and an epoch end in the middle.
pub fn write_recording(path: &Path, steps: u64) {
    let mut f = std::fs::File::create(path).unwrap();
    let layers = ["fc1", "fc2", "fc3"];
    let info = RunInfo {
        layers: layers.iter().map(|s| s.to_string()).collect(),
        ..RunInfo::default()
    };
    let mut lines = vec![Event::new(
        0,
        0,
        0.0,
        Payload::RunStart {
            info: Box::new(info),
        },
    )];
    for step in 0..steps {
        let t = step as f64 * 0.1;
        for (i, l) in layers.iter().enumerate() {
            let value = 10f64.powf(step as f64 / steps as f64 * 4.0 - 2.0 + i as f64 / 2.0);
            lines.push(Event::new(
                step,
                0,
                t,
                Payload::GradNorm {
                    layer: Layer::new(*l, i as u32),
                    value,
                },
            ));
        }
        lines.push(Event::new(
            step,
            0,
            t,
            Payload::Loss {
                value: 3.0 - 2.5 * step as f64 / steps as f64,
            },
        ));
        if step == steps / 2 {
            lines.push(Event::new(step, 0, t, Payload::EpochEnd));
        }
    }
    for e in lines {
        writeln!(f, "{}", e.to_json_line()).unwrap();
    }
}

/// Replays a recording through a router with the mapping, the clock being `step_secs` per
/// step (a deterministic step clock), and returns the messages.
pub fn replay(path: &Path, mapping: &Mapping, step_secs: f64) -> Vec<Message> {
    let mut router = Router::new(mapping);
    let mut out = Vec::new();
    let mut now = 0.0;
    for e in Recording::open(path).unwrap() {
        let e = e.unwrap();
        now = e.step as f64 * step_secs;
        router.route(now, &e, &mut out);
        router.tick(now, &mut out);
    }
    router.finish(now + 1.0, &mut out);
    out
}

/// The peak frequency (Hz) of `samples` (mono, `rate` Hz) by FFT with parabolic
/// interpolation, or None for near silence.
pub fn peak_hz(samples: &[f32], rate: f64) -> Option<f64> {
    use rustfft::{num_complex::Complex, FftPlanner};
    let n = samples.len();
    let rms = (samples.iter().map(|s| (s * s) as f64).sum::<f64>() / n as f64).sqrt();
    if rms < 1e-3 {
        return None;
    }
    let mut buf: Vec<Complex<f64>> = samples
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            let w = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos();
            Complex::new(s as f64 * w, 0.0)
        })
        .collect();
    FftPlanner::new().plan_fft_forward(n).process(&mut buf);
    let mags: Vec<f64> = buf[..n / 2].iter().map(|c| c.norm()).collect();
    let (k, _) =
        mags.iter().enumerate().skip(2).fold(
            (0, 0.0),
            |best, (i, &m)| if m > best.1 { (i, m) } else { best },
        );
    let (a, b, c) = (mags[k - 1], mags[k], mags[k + 1]);
    let shift = 0.5 * (a - c) / (a - 2.0 * b + c);
    Some((k as f64 + shift) * rate / n as f64)
}

/// Mono samples of a WAV file (channels averaged) and its rate.
pub fn read_wav_mono(path: &Path) -> (Vec<f32>, f64) {
    let mut r = hound::WavReader::open(path).unwrap();
    let spec = r.spec();
    let ch = spec.channels as usize;
    let raw: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Int => {
            let scale = (1i64 << (spec.bits_per_sample - 1)) as f32;
            r.samples::<i32>()
                .map(|s| s.unwrap() as f32 / scale)
                .collect()
        }
        hound::SampleFormat::Float => r.samples::<f32>().map(|s| s.unwrap()).collect(),
    };
    let mono = raw
        .chunks(ch)
        .map(|c| c.iter().sum::<f32>() / ch as f32)
        .collect();
    (mono, spec.sample_rate as f64)
}
