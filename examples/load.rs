//! Load generator: sends `RATE` events/s as JSON lines over UDP to `ADDR` for `SECS` seconds,
//! `LINES` lines a datagram (default 1; the Python client sends a step's events, about ten, in
//! one datagram), then a `run_end`, and prints how many it sent.
//!
//! ```text
//! cargo run --release -- listen --udp 127.0.0.1:9107 --record /tmp/load.jsonl --runs-ending 1 &
//! cargo run --release --example load -- 127.0.0.1:9107 200000 10 10
//! ```

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use sonograd::event::{EndReason, Event, Layer, Payload};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = || -> ! {
        eprintln!("usage: load ADDR RATE SECS [LINES]");
        std::process::exit(2);
    };
    let (addr, rate, secs, lines) = match args.as_slice() {
        [_, a, r, s, rest @ ..] if rest.len() <= 1 => (
            a.clone(),
            r.parse::<u64>().unwrap_or_else(|_| usage()),
            s.parse::<f64>().unwrap_or_else(|_| usage()),
            rest.first()
                .map_or(Ok(1), |l| l.parse::<u64>())
                .unwrap_or_else(|_| usage())
                .max(1),
        ),
        _ => usage(),
    };
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(&addr).unwrap();
    let layers: Vec<Layer> = (0..8).map(|i| Layer::new(format!("fc{i}"), i)).collect();
    let total = (rate as f64 * secs) as u64;
    let start = Instant::now();
    let mut line = Vec::with_capacity(256 * lines as usize);
    let mut batched = 0u64;
    let mut sent = 0u64;
    let mut failed = 0u64;
    while sent + failed < total {
        // Send in bursts of 1 ms worth of events, then wait for the schedule.
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        while sent + failed + batched < due.min(total) {
            let i = sent + failed + batched;
            let e = Event::new(
                i / 10,
                0,
                1.8e9 + i as f64 / rate as f64,
                Payload::GradNorm {
                    layer: layers[(i % 8) as usize].clone(),
                    value: i as f64,
                },
            );
            e.write_json_line(&mut line);
            line.push(b'\n');
            batched += 1;
            let last = i + 1 == due.min(total);
            if batched == lines || last {
                match sock.send(&line) {
                    Ok(_) => sent += batched,
                    Err(_) => failed += batched,
                }
                line.clear();
                batched = 0;
            }
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    let end = Event::new(
        total,
        0,
        1.8e9 + secs,
        Payload::RunEnd {
            reason: EndReason::Completed,
            coalesced: 0,
        },
    );
    std::thread::sleep(Duration::from_millis(200));
    let _ = sock.send(end.to_json_line().as_bytes());
    let took = start.elapsed().as_secs_f64();
    println!(
        "sent {} events (+1 run_end) in {took:.2} s ({:.0}/s), {failed} send errors",
        sent,
        sent as f64 / took
    );
}
