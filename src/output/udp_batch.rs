//! UDP datagrams batched into one `sendmmsg` system call (Linux), so a burst of OSC messages
//! costs one kernel entry per [`MAX_BATCH`] datagrams instead of one each. Elsewhere each
//! datagram is sent on its own. Every datagram stays a separate OSC packet.

use std::io;
use std::net::UdpSocket;

/// Most datagrams held before they are sent.
pub(crate) const MAX_BATCH: usize = 64;

/// Datagrams waiting for one connected UDP socket.
#[derive(Debug, Default)]
pub(crate) struct UdpBatch {
    bytes: Vec<u8>,
    ends: Vec<usize>,
    /// OSC messages in each datagram (a bundle holds several).
    messages: Vec<u64>,
}

/// What a flush did, in messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Flushed {
    /// Messages in datagrams the OS took.
    pub sent: u64,
    /// Messages in datagrams refused (the first error is returned beside).
    pub dropped: u64,
}

impl UdpBatch {
    /// Adds one datagram holding `messages` messages; true when the batch is full and
    /// should be flushed.
    pub(crate) fn push(&mut self, datagram: &[u8], messages: u64) -> bool {
        self.bytes.extend_from_slice(datagram);
        self.ends.push(self.bytes.len());
        self.messages.push(messages);
        self.ends.len() >= MAX_BATCH
    }

    /// Whether nothing waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Sends every waiting datagram; returns the counts and the first error seen.
    pub(crate) fn flush(&mut self, sock: &UdpSocket) -> (Flushed, Option<io::Error>) {
        let result = self.send_all(sock);
        self.bytes.clear();
        self.ends.clear();
        self.messages.clear();
        result
    }

    #[cfg(target_os = "linux")]
    fn send_all(&mut self, sock: &UdpSocket) -> (Flushed, Option<io::Error>) {
        use std::os::fd::AsRawFd;
        let n = self.ends.len();
        let mut iov: [libc::iovec; MAX_BATCH] = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; MAX_BATCH];
        // SAFETY: mmsghdr is plain old data; all-zero is a valid (empty) value.
        let mut hdr: [libc::mmsghdr; MAX_BATCH] = unsafe { std::mem::zeroed() };
        let mut start = 0;
        for i in 0..n {
            iov[i].iov_base = self.bytes[start..].as_mut_ptr().cast();
            iov[i].iov_len = self.ends[i] - start;
            hdr[i].msg_hdr.msg_iov = &mut iov[i];
            hdr[i].msg_hdr.msg_iovlen = 1;
            start = self.ends[i];
        }
        let mut done = Flushed::default();
        let mut error = None;
        let mut at = 0;
        while at < n {
            // SAFETY: hdr[at..n] point into iov and self.bytes, which outlive the call; the
            // socket is connected, so no address is needed.
            let r = unsafe {
                libc::sendmmsg(sock.as_raw_fd(), hdr[at..].as_mut_ptr(), (n - at) as u32, 0)
            };
            if r > 0 {
                done.sent += self.messages[at..at + r as usize].iter().sum::<u64>();
                at += r as usize;
            } else {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The datagram at `at` failed (refused, no buffer): drop it, go on.
                done.dropped += self.messages[at];
                at += 1;
                error.get_or_insert(e);
            }
        }
        (done, error)
    }

    #[cfg(not(target_os = "linux"))]
    fn send_all(&mut self, sock: &UdpSocket) -> (Flushed, Option<io::Error>) {
        let mut done = Flushed::default();
        let mut error = None;
        let mut start = 0;
        for (&end, &m) in self.ends.iter().zip(&self.messages) {
            match sock.send(&self.bytes[start..end]) {
                Ok(_) => done.sent += m,
                Err(e) => {
                    done.dropped += m;
                    error.get_or_insert(e);
                }
            }
            start = end;
        }
        (done, error)
    }
}
