//! What the two UDP inputs share: binding with a large receive buffer, the receive loop,
//! and the kernel's count of datagrams it dropped for the socket.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use super::intake::{InputReport, Intake};

/// How often a blocked receive wakes up to look at the stop flags.
const POLL: Duration = Duration::from_millis(100);

/// Binds a UDP socket at `addr` asking for a receive buffer of `recv_buffer` bytes; returns
/// the socket and the buffer size the kernel granted.
///
/// As root, `SO_RCVBUFFORCE` gets past `net.core.rmem_max`; otherwise the kernel caps the
/// request at `rmem_max` (and doubles it for bookkeeping).
pub(crate) fn bind(addr: SocketAddr, recv_buffer: usize) -> io::Result<(UdpSocket, usize)> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if !force_recv_buffer(&socket, recv_buffer) {
        // Best effort: a smaller buffer only means earlier kernel drops, which are counted.
        let _ = socket.set_recv_buffer_size(recv_buffer);
    }
    socket.bind(&addr.into())?;
    let granted = socket.recv_buffer_size().unwrap_or(0);
    let socket: UdpSocket = socket.into();
    socket.set_read_timeout(Some(POLL))?;
    Ok((socket, granted))
}

#[cfg(target_os = "linux")]
fn force_recv_buffer(socket: &Socket, size: usize) -> bool {
    use std::os::fd::AsRawFd;
    let value = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
    // SAFETY: a valid socket descriptor, a pointer to a c_int and its exact length.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    rc == 0
}

#[cfg(not(target_os = "linux"))]
fn force_recv_buffer(_socket: &Socket, _size: usize) -> bool {
    false
}

/// Receives datagrams until `done` or `stop` is set, handing each to `decode` with its
/// sender in [`Intake::peer`]; then reads
/// what is still queued in the socket and the kernel's drop count, and reports.
///
/// A datagram longer than `max_datagram` is counted as [`super::BadKind::DatagramTooLarge`].
pub(crate) fn receive(
    socket: UdpSocket,
    max_datagram: usize,
    intake: &mut Intake,
    decode: fn(&[u8], &mut Intake),
    done: &AtomicBool,
    stop: &AtomicBool,
) -> InputReport {
    let mut buf = vec![0u8; max_datagram + 1];
    let handle = |data: &[u8], intake: &mut Intake| {
        intake.report.units += 1;
        if data.len() > max_datagram {
            intake.reject_oversized(data.len(), max_datagram, data);
        } else {
            decode(data, intake);
        }
    };
    while !done.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                intake.peer = Some(from);
                handle(&buf[..n], intake);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                // e.g. ECONNREFUSED echoes from ICMP on some systems: note and go on.
                intake.note_io_error(&e);
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    // What already arrived is routed too, so the accounting closes.
    if socket.set_nonblocking(true).is_ok() {
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            intake.peer = Some(from);
            handle(&buf[..n], intake);
        }
    }
    intake.finish();
    intake.report.kernel_drops = kernel_drops(&socket);
    std::mem::take(&mut intake.report)
}

/// The kernel's count of datagrams dropped for this socket (a full receive buffer), from
/// `/proc/net/udp` or `/proc/net/udp6`; `None` where that is not available.
pub(crate) fn kernel_drops(socket: &UdpSocket) -> Option<u64> {
    let inode = socket_inode(socket)?;
    ["/proc/net/udp", "/proc/net/udp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .find_map(|text| parse_udp_drops(&text, inode))
}

#[cfg(target_os = "linux")]
fn socket_inode(socket: &UdpSocket) -> Option<u64> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(format!("/proc/self/fd/{}", socket.as_raw_fd())).ok()?;
    Some(meta.ino())
}

#[cfg(not(target_os = "linux"))]
fn socket_inode(_socket: &UdpSocket) -> Option<u64> {
    None
}

/// The `drops` column of the `/proc/net/udp` row whose `inode` column is `inode`.
pub(crate) fn parse_udp_drops(table: &str, inode: u64) -> Option<u64> {
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next()?.split_whitespace().collect();
    // The header splits "tx_queue rx_queue" and "tr tm->when" differently from the rows:
    // count columns from the end, where both agree (`... inode ref pointer drops`).
    let from_end = |name: &str| header.iter().rev().position(|h| *h == name);
    let (inode_back, drops_back) = (from_end("inode")?, from_end("drops")?);
    lines.find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let at = |back: usize| cols.len().checked_sub(back + 1).and_then(|i| cols.get(i));
        let row_inode: u64 = at(inode_back)?.parse().ok()?;
        if row_inode != inode {
            return None;
        }
        at(drops_back)?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops             \n\
  123: 0100007F:2393 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 17        \n\
  124: 0100007F:2394 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4343 2 0000000000000000 0         \n";

    #[test]
    fn the_drops_column_of_the_right_row_is_read() {
        assert_eq!(parse_udp_drops(TABLE, 4242), Some(17));
        assert_eq!(parse_udp_drops(TABLE, 4343), Some(0));
        assert_eq!(parse_udp_drops(TABLE, 1), None);
        assert_eq!(parse_udp_drops("", 1), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_bound_socket_finds_its_row_and_gets_a_large_buffer() {
        let (socket, granted) = bind("127.0.0.1:0".parse().unwrap(), 4 << 20).unwrap();
        assert_eq!(kernel_drops(&socket), Some(0));
        assert!(granted >= 256 * 1024, "receive buffer {granted}");
    }
}
