//! OSC client output: UDP datagrams or a TCP stream with SLIP framing (OSC 1.1).
//!
//! With `latency_ms > 0` every message goes out as a bundle time-tagged that far ahead of
//! the wall clock, so the receiver can schedule it sample-accurately; with 0, as a plain
//! message. A peer that is down or refuses is reported once and retried (UDP: every send;
//! TCP: a reconnect with a backoff of up to [`TCP_MAX_BACKOFF`]); messages meanwhile are
//! dropped and counted. The TCP send buffer is capped at [`TCP_MAX_PENDING`] bytes, so
//! nothing grows without bound when the peer stalls.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant, SystemTime};

use crate::mapping::schema::{Mapping, OscProtocol, OutputKind};
use crate::message::Message;
use rosc::OscPacket;

use super::osc_packet::{encode, slip_frame, timetag_at, PacketBuilder};
use super::udp_batch::UdpBatch;
use super::warn::WarnOnce;
use super::Output;

/// Most bytes a TCP link buffers while the peer does not read.
pub const TCP_MAX_PENDING: usize = 1 << 20;
/// Longest wait between TCP reconnect attempts.
pub const TCP_MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Largest bundle the client packs messages into (fits one Ethernet frame: no IP
/// fragmentation). A single larger message goes in a bundle of its own.
pub const MAX_BUNDLE_BYTES: usize = 1432;
/// How long one TCP connect attempt may take.
const TCP_CONNECT_TIMEOUT: Duration = Duration::from_millis(250);

/// Opening an OSC output failed.
#[derive(Debug, thiserror::Error)]
pub enum OscError {
    /// The host name does not resolve.
    #[error("cannot resolve OSC host {host}:{port}: {source}")]
    Resolve {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// What the resolver said.
        source: io::Error,
    },
    /// The local UDP socket cannot be made.
    #[error("cannot open a UDP socket for {addr}: {source}")]
    Socket {
        /// Peer.
        addr: SocketAddr,
        /// What the OS said.
        source: io::Error,
    },
    /// The mapping output is not an OSC output.
    #[error("output {0} is not an OSC output")]
    NotOsc(String),
}

/// Counters of an OSC client, in messages (a bundle counts its messages).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OscStats {
    /// Messages handed to the OS.
    pub sent: u64,
    /// Messages dropped (peer down, refused, or TCP buffer full).
    pub dropped: u64,
}

/// Sends OSC packets to one peer.
pub struct OscClient {
    link: Link,
    latency: Option<Duration>,
    buf: Vec<u8>,
    /// The bundle being filled (empty: none open) and how many messages it holds.
    bundle: Vec<u8>,
    bundled: u64,
    stats: OscStats,
    warn: WarnOnce,
    name: String,
}

enum Link {
    Udp(UdpSocket, UdpBatch),
    Tcp(TcpLink),
}

struct TcpLink {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    pending: Vec<u8>,
    frame: Vec<u8>,
    next_try: Instant,
    backoff: Duration,
}

impl OscClient {
    /// A client for `host:port`. `latency_ms` 0 sends plain messages, otherwise bundles
    /// time-tagged that far ahead. Nothing is sent yet; a TCP peer is connected lazily.
    pub fn open(
        host: &str,
        port: u16,
        protocol: OscProtocol,
        latency_ms: u32,
    ) -> Result<OscClient, OscError> {
        let addr = (host, port)
            .to_socket_addrs()
            .and_then(|mut a| {
                a.next()
                    .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))
            })
            .map_err(|source| OscError::Resolve {
                host: host.to_string(),
                port,
                source,
            })?;
        let link = match protocol {
            OscProtocol::Udp => {
                let local: SocketAddr = if addr.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                let sock = UdpSocket::bind(local)
                    .and_then(|s| s.connect(addr).map(|_| s))
                    .map_err(|source| OscError::Socket { addr, source })?;
                Link::Udp(sock, UdpBatch::default())
            }
            OscProtocol::Tcp => Link::Tcp(TcpLink {
                addr,
                stream: None,
                pending: Vec::with_capacity(4096),
                frame: Vec::with_capacity(256),
                next_try: Instant::now(),
                backoff: Duration::from_millis(100),
            }),
        };
        Ok(OscClient {
            link,
            latency: (latency_ms > 0).then(|| Duration::from_millis(latency_ms as u64)),
            buf: Vec::with_capacity(512),
            bundle: Vec::with_capacity(MAX_BUNDLE_BYTES + 512),
            bundled: 0,
            stats: OscStats::default(),
            warn: WarnOnce::default(),
            name: format!("OSC {addr} ({protocol:?})").to_lowercase(),
        })
    }

    /// A client for an `osc` output of a mapping.
    pub fn for_output(kind: &OutputKind, name: &str) -> Result<OscClient, OscError> {
        match kind {
            OutputKind::Osc {
                host,
                port,
                protocol,
                latency_ms,
            } => OscClient::open(host, *port, *protocol, *latency_ms),
            _ => Err(OscError::NotOsc(name.to_string())),
        }
    }

    /// Sends one packet. With a latency, messages are packed into a bundle time-tagged
    /// `latency` ahead of the first one's send time, closed at the next
    /// [`OscClient::flush`] or at [`MAX_BUNDLE_BYTES`]; without, each goes as it is. UDP
    /// datagrams are batched too: they leave at the next flush or when
    /// `MAX_BATCH` wait.
    pub fn send(&mut self, packet: &OscPacket) {
        let Some(latency) = self.latency else {
            self.buf.clear();
            encode(packet, None, &mut self.buf);
            self.send_encoded(1);
            return;
        };
        if self.bundle.is_empty() {
            self.buf.clear();
            encode(
                packet,
                Some(timetag_at(SystemTime::now() + latency)),
                &mut self.buf,
            );
            std::mem::swap(&mut self.bundle, &mut self.buf);
        } else {
            let at = self.bundle.len();
            self.bundle.extend_from_slice(&[0; 4]);
            let n = encode(packet, None, &mut self.bundle);
            self.bundle[at..at + 4].copy_from_slice(&(n as i32).to_be_bytes());
        }
        self.bundled += 1;
        if self.bundle.len() >= MAX_BUNDLE_BYTES {
            self.close_bundle();
        }
    }

    fn close_bundle(&mut self) {
        if self.bundle.is_empty() {
            return;
        }
        std::mem::swap(&mut self.bundle, &mut self.buf);
        self.bundle.clear();
        let n = std::mem::take(&mut self.bundled);
        self.send_encoded(n);
    }

    /// Sends `self.buf`, a packet of `messages` messages.
    fn send_encoded(&mut self, messages: u64) {
        match &mut self.link {
            Link::Udp(_, batch) => {
                if batch.push(&self.buf, messages) {
                    self.flush_link();
                }
            }
            Link::Tcp(tcp) => {
                if tcp.queue(&self.buf, &mut self.warn, &self.name) {
                    self.stats.sent += messages;
                } else {
                    self.stats.dropped += messages;
                }
            }
        }
    }

    /// Closes the open bundle, sends the waiting UDP datagrams, writes what TCP has
    /// buffered.
    pub fn flush(&mut self) {
        self.close_bundle();
        self.flush_link();
    }

    fn flush_link(&mut self) {
        match &mut self.link {
            Link::Udp(sock, batch) => {
                if batch.is_empty() {
                    return;
                }
                let (done, err) = batch.flush(sock);
                self.stats.sent += done.sent;
                self.stats.dropped += done.dropped;
                if let Some(e) = err {
                    self.warn.hit(&self.name, format!("send failed: {e}"));
                }
            }
            Link::Tcp(tcp) => tcp.write_pending(&mut self.warn, &self.name),
        }
    }

    /// Tries for up to `limit` to hand every buffered TCP byte to the OS.
    pub fn drain(&mut self, limit: Duration) {
        self.flush();
        let until = Instant::now() + limit;
        while let Link::Tcp(tcp) = &mut self.link {
            tcp.write_pending(&mut self.warn, &self.name);
            if tcp.pending.is_empty() || tcp.stream.is_none() || Instant::now() >= until {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Changes the bundle latency (0: plain messages).
    pub fn set_latency(&mut self, latency_ms: u32) {
        self.latency = (latency_ms > 0).then(|| Duration::from_millis(latency_ms as u64));
    }

    /// Waits up to `timeout` for a reply from the peer (UDP only; TCP replies are not read).
    pub fn recv(&mut self, timeout: Duration) -> Option<OscPacket> {
        self.flush();
        let Link::Udp(sock, _) = &self.link else {
            return None;
        };
        sock.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
            .ok()?;
        let mut buf = [0u8; 8192];
        let n = sock.recv(&mut buf).ok()?;
        rosc::decoder::decode_udp(&buf[..n]).ok().map(|(_, p)| p)
    }

    /// Counters so far.
    pub fn stats(&self) -> OscStats {
        self.stats
    }
}

impl TcpLink {
    /// Frames and buffers one packet, connecting first when needed. False: dropped.
    fn queue(&mut self, packet: &[u8], warn: &mut WarnOnce, name: &str) -> bool {
        if self.stream.is_none() && !self.connect(warn, name) {
            return false;
        }
        self.frame.clear();
        slip_frame(packet, &mut self.frame);
        if self.pending.len() + self.frame.len() > TCP_MAX_PENDING {
            warn.hit(name, "peer does not keep up, dropping messages");
            return false;
        }
        self.pending.extend_from_slice(&self.frame);
        self.write_pending(warn, name);
        true
    }

    fn connect(&mut self, warn: &mut WarnOnce, name: &str) -> bool {
        let now = Instant::now();
        if now < self.next_try {
            return false;
        }
        match TcpStream::connect_timeout(&self.addr, TCP_CONNECT_TIMEOUT)
            .and_then(|s| s.set_nodelay(true).and(s.set_nonblocking(true)).map(|_| s))
        {
            Ok(s) => {
                if warn.count() > 0 {
                    eprintln!("{name}: connected");
                }
                warn.reset();
                self.stream = Some(s);
                self.backoff = Duration::from_millis(100);
                true
            }
            Err(e) => {
                warn.hit(name, format!("cannot connect ({e}); retrying"));
                self.next_try = now + self.backoff;
                self.backoff = (self.backoff * 2).min(TCP_MAX_BACKOFF);
                false
            }
        }
    }

    fn write_pending(&mut self, warn: &mut WarnOnce, name: &str) {
        let Some(stream) = &mut self.stream else {
            return;
        };
        let mut written = 0;
        while written < self.pending.len() {
            match stream.write(&self.pending[written..]) {
                Ok(0) => break,
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // A cut frame is harmless: SLIP resynchronises at the next END.
                    warn.hit(name, format!("connection lost ({e}); reconnecting"));
                    self.stream = None;
                    self.pending.clear();
                    return;
                }
            }
        }
        self.pending.drain(..written);
    }
}

/// An `osc` output of a mapping: expands each OSC message and sends it.
pub struct OscOutput {
    client: Option<OscClient>,
    builder: PacketBuilder,
}

impl OscOutput {
    /// Opens the client of an `osc` output.
    pub fn open(kind: &OutputKind, name: &str) -> Result<OscOutput, OscError> {
        Ok(OscOutput {
            client: Some(OscClient::for_output(kind, name)?),
            builder: PacketBuilder::default(),
        })
    }

    /// Counters of the client (zeros once closed).
    pub fn stats(&self) -> OscStats {
        self.client
            .as_ref()
            .map(OscClient::stats)
            .unwrap_or_default()
    }
}

impl Output for OscOutput {
    fn send(&mut self, msg: &Message, mapping: &Mapping) {
        let Some(client) = &mut self.client else {
            return;
        };
        if let Some(packet) = self.builder.build(msg, mapping) {
            client.send(packet);
        }
    }

    fn tick(&mut self) {
        if let Some(c) = &mut self.client {
            c.flush();
        }
    }

    fn close(&mut self) {
        if let Some(mut c) = self.client.take() {
            c.drain(Duration::from_millis(500));
        }
    }
}

impl Drop for OscOutput {
    fn drop(&mut self) {
        self.close();
    }
}
