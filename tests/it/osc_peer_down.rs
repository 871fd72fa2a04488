//! An OSC peer that is down: sends go on (dropped and counted, no error, no growth), and
//! once the peer is up again messages arrive, over UDP and over TCP.

use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::time::{Duration, Instant};

use rosc::{OscPacket, OscType};
use sonograd::mapping::schema::OscProtocol;
use sonograd::output::osc::OscClient;

fn packet(i: i32) -> OscPacket {
    OscPacket::Message(rosc::OscMessage {
        addr: "/x".into(),
        args: vec![OscType::Int(i)],
    })
}

#[test]
fn udp_refused_then_back() {
    let port = {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let mut c = OscClient::open("127.0.0.1", port, OscProtocol::Udp, 0).unwrap();
    for i in 0..50 {
        c.send(&packet(i));
        c.flush();
    }
    let down = c.stats();
    assert!(
        down.dropped > 0,
        "ICMP port unreachable shows up as refused sends"
    );
    assert_eq!(down.sent + down.dropped, 50);
    let rx = UdpSocket::bind(("127.0.0.1", port)).unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    c.send(&packet(99));
    c.flush();
    let mut buf = [0u8; 256];
    let n = rx.recv(&mut buf).unwrap();
    let (_, p) = rosc::decoder::decode_udp(&buf[..n]).unwrap();
    assert_eq!(p, packet(99));
}

#[test]
fn tcp_reconnects_after_the_peer_comes_up() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut c = OscClient::open("127.0.0.1", port, OscProtocol::Tcp, 0).unwrap();
    for i in 0..20 {
        c.send(&packet(i));
    }
    assert_eq!(
        c.stats().dropped,
        20,
        "nothing is buffered while the peer is down"
    );
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    // Keep sending until the backoff allows a reconnect (at most a few hundred ms here).
    let until = Instant::now() + Duration::from_secs(3);
    while c.stats().sent == 0 && Instant::now() < until {
        c.send(&packet(7));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(c.stats().sent > 0, "reconnected");
    c.drain(Duration::from_millis(500));
    let (mut stream, _) = listener.accept().unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut bytes = vec![0u8; 64];
    let n = stream.read(&mut bytes).unwrap();
    let frame = &bytes[..n];
    let end = frame.iter().position(|&b| b == 0xC0).expect("a SLIP END");
    let (_, p) = rosc::decoder::decode_udp(&frame[..end]).unwrap();
    assert_eq!(p, packet(7));
}
