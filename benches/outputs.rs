//! Output throughput and timing (`cargo bench --bench outputs`):
//! - OSC: messages a second from the router's messages to a local UDP receiver that keeps
//!   up, plain and in bundles; what the sender dropped and what the receiver counted.
//! - MIDI: lateness of the sender thread (due time to send) at 200 notes a second with
//!   note lengths 1-100 ms, p50 / p99 / max.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sonograd::mapping::schema::Metric;
use sonograd::mapping::{self, Mapping};
use sonograd::message::{Action, Message};
use sonograd::output::midi::MidiOut;
use sonograd::output::midi_sched::{MidiSink, SchedConfig};
use sonograd::output::osc::OscOutput;
use sonograd::output::Output;

fn osc_mapping(port: u16, latency_ms: u32) -> Mapping {
    let src = format!(
        r#"
[outputs.sc]
kind = "osc"
port = {port}
latency_ms = {latency_ms}
[[route]]
name = "loss"
output = "sc"
match = {{ metric = "loss" }}
transform = {{ domain = [0, 4] }}
to = {{ address = "/sonograd/loss", args = ["f:value", "f:raw", "i:step"], range = [100, 1000] }}
"#
    );
    mapping::parse_str(&src, "bench.toml").unwrap()
}

fn osc_msg(step: u64) -> Message {
    Message {
        time: step as f64 * 1e-3,
        step,
        epoch: 0,
        route: 0,
        output: 0,
        metric: Metric::Loss,
        layer: None,
        raw: 1.0 + (step % 100) as f64 * 0.01,
        level: 0.3,
        alarm: false,
        action: Action::Osc {
            value: 370.0 + (step % 100) as f64,
        },
    }
}

/// Sends `n` messages, calling `tick` after every `batch` (as the dispatcher does after
/// each event's messages).
fn osc_bench(latency_ms: u32, n: u64, batch: u64) {
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = rx.local_addr().unwrap().port();
    rx.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let count = received.clone();
    grow_receive_buffer(&rx);
    let receiver = std::thread::spawn(move || receive_all(&rx, &count));
    let m = osc_mapping(port, latency_ms);
    let mut out = OscOutput::open(&m.outputs[0].kind, "sc").unwrap();
    // Warm up (buffers grow once).
    for s in 0..1000 {
        out.send(&osc_msg(s), &m);
    }
    out.tick();
    let t = Instant::now();
    for s in 0..n {
        out.send(&osc_msg(s), &m);
        if (s + 1) % batch == 0 {
            out.tick();
        }
    }
    let secs = t.elapsed().as_secs_f64();
    out.tick();
    let secs = secs.max(t.elapsed().as_secs_f64());
    let stats = out.stats();
    out.close();
    receiver.join().unwrap();
    println!(
        "osc udp {:<7} tick every {batch:>4}: {:>9.0} msg/s ({n} messages in {secs:.3} s), sender dropped {}, receiver got {} of {}",
        if latency_ms == 0 { "plain" } else { "bundles" },
        n as f64 / secs,
        stats.dropped,
        received.load(Ordering::Relaxed),
        stats.sent
    );
}

/// 32 MiB of receive buffer (SO_RCVBUFFORCE as root, else up to the system's maximum).
fn grow_receive_buffer(sock: &UdpSocket) {
    use std::os::fd::AsRawFd;
    let size: libc::c_int = 32 << 20;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: setsockopt with a valid int option value.
        let r = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r == 0 {
            break;
        }
    }
}

/// Counts datagrams with recvmmsg (64 per call) until 300 ms pass without any.
fn receive_all(sock: &UdpSocket, count: &AtomicU64) {
    use std::os::fd::AsRawFd;
    const N: usize = 64;
    let mut bufs = vec![[0u8; 2048]; N];
    let mut iov: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        })
        .collect();
    // SAFETY: zeroed mmsghdr is valid; each points at its own iovec.
    let mut hdr: Vec<libc::mmsghdr> = (0..N).map(|_| unsafe { std::mem::zeroed() }).collect();
    for (h, v) in hdr.iter_mut().zip(iov.iter_mut()) {
        h.msg_hdr.msg_iov = v;
        h.msg_hdr.msg_iovlen = 1;
    }
    loop {
        // SAFETY: buffers outlive the call; the socket has a 300 ms read timeout.
        let r = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                hdr.as_mut_ptr(),
                N as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if r <= 0 {
            return;
        }
        let mut messages = 0;
        for (h, b) in hdr.iter().zip(&bufs).take(r as usize) {
            messages += messages_in(&b[..h.msg_len as usize]);
        }
        count.fetch_add(messages, Ordering::Relaxed);
    }
}

/// OSC messages in a datagram: 1, or the elements of a bundle (not nested here).
fn messages_in(d: &[u8]) -> u64 {
    if !d.starts_with(b"#bundle\0") {
        return 1;
    }
    let (mut at, mut n) = (16, 0);
    while at + 4 <= d.len() {
        at += 4 + i32::from_be_bytes(d[at..at + 4].try_into().unwrap()) as usize;
        n += 1;
    }
    n
}

struct NullSink;

impl MidiSink for NullSink {
    fn send(&mut self, _bytes: &[u8]) -> Result<(), String> {
        Ok(())
    }
}

fn midi_bench(seconds: u64) {
    let mut out = MidiOut::with_sink(Box::new(NullSink), SchedConfig::default(), "null");
    let m = Mapping {
        description: String::new(),
        outputs: vec![],
        routes: vec![],
        diagnose: Default::default(),
        controls: Default::default(),
    };
    let mut seed = 12345u64;
    let start = Instant::now();
    let total = seconds * 200;
    for i in 0..total {
        let due = start + Duration::from_millis(i * 5);
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let msg = Message {
            action: Action::Note {
                channel: 1 + (i % 4) as u8,
                note: 36 + (seed >> 33) as u8 % 60,
                velocity: 100,
                length_ms: 1 + (seed >> 40) as u32 % 100,
            },
            ..osc_msg(i)
        };
        out.send(&msg, &m);
    }
    std::thread::sleep(Duration::from_millis(150));
    let r = out.finish();
    println!(
        "midi sender lateness ({} messages, {} notes on, {} off): p50 {} us, p99 {} us, p99.9 {} us, max {} us",
        r.sent,
        r.notes_on,
        r.notes_off,
        r.lateness_quantile_us(0.5),
        r.lateness_quantile_us(0.99),
        r.lateness_quantile_us(0.999),
        r.lateness_quantile_us(1.0)
    );
}

/// The same work without the socket: expand and encode only.
fn encode_bench(n: u64) {
    use sonograd::output::osc_packet::{encode, PacketBuilder};
    let m = osc_mapping(9, 0);
    let mut b = PacketBuilder::default();
    let mut buf = Vec::with_capacity(256);
    let t = Instant::now();
    let mut bytes = 0;
    for s in 0..n {
        buf.clear();
        if let Some(p) = b.build(&osc_msg(s), &m) {
            bytes += encode(p, None, &mut buf);
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "osc encode only : {:>9.0} msg/s ({bytes} bytes)",
        n as f64 / secs
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run short then.
    let full = std::env::args().any(|a| a == "--bench");
    let n = if full { 1_000_000 } else { 10_000 };
    encode_bench(n);
    osc_bench(0, n, 64);
    osc_bench(50, n, 8);
    osc_bench(50, n, 1000);
    midi_bench(if full { 5 } else { 1 });
}
