//! TFRecord framing of TensorBoard event files: each record is a little-endian `u64` length,
//! the masked CRC-32C of those 8 bytes, the data, and the masked CRC-32C of the data.
//!
//! [`Framing`] is a push parser: bytes go in as they are read ([`Framing::feed`]), records come
//! out ([`Framing::next_record`]). The same parser serves a finished file and one that is still
//! being written: a record that is not complete yet is waited for ([`Next::NeedMore`]), and at
//! the end of a file it is a truncated tail, not an error. A record whose CRCs do not match is
//! reported with its offset and skipped; after a damaged length the parser resynchronises on
//! the next valid header.

/// Bytes of a record's header: the length and its CRC.
pub const HEADER: usize = 12;
/// Bytes of a record's footer: the data's CRC.
pub const FOOTER: usize = 4;
/// Longest record accepted (a longer length is taken as damage).
pub const MAX_RECORD: u64 = 256 << 20;

/// The CRC-32C of `data`, masked as TFRecord stores it.
pub fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    (crc.rotate_right(15)).wrapping_add(0xa282_ead8)
}

/// What [`Framing::next_record`] found.
#[derive(Debug, PartialEq)]
pub enum Next<'a> {
    /// A whole record with matching CRCs, at this file offset.
    Record {
        /// Offset of the record's header in the file.
        offset: u64,
        /// The record's data.
        data: &'a [u8],
    },
    /// A damaged record at this offset was skipped.
    Corrupt {
        /// Offset of the damaged header or record.
        offset: u64,
        /// What was wrong.
        what: &'static str,
    },
    /// More bytes are needed for the next record.
    NeedMore,
}

/// Incremental TFRecord parser (see the module docs).
#[derive(Debug, Default)]
pub struct Framing {
    buf: Vec<u8>,
    /// Read position in `buf`.
    pos: usize,
    /// File offset of `buf[0]`.
    base: u64,
    /// Looking for a valid header after a damaged one (reported once).
    resyncing: bool,
}

impl Framing {
    /// A parser for a file read from its start.
    pub fn new() -> Self {
        Framing::default()
    }

    /// Appends bytes read from the file.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.pos > 0 && self.pos >= self.buf.len() / 2 {
            self.buf.drain(..self.pos);
            self.base += self.pos as u64;
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Space to read into: `n` bytes at the end of the buffer. Call [`Framing::commit`] with
    /// the number actually read.
    pub fn spare(&mut self, n: usize) -> &mut [u8] {
        if self.pos > 0 && self.pos >= self.buf.len() / 2 {
            self.buf.drain(..self.pos);
            self.base += self.pos as u64;
            self.pos = 0;
        }
        let len = self.buf.len();
        self.buf.resize(len + n, 0);
        &mut self.buf[len..]
    }

    /// Keeps `read` of the bytes handed out by the last [`Framing::spare`].
    pub fn commit(&mut self, spare: usize, read: usize) {
        let keep = self.buf.len() - spare + read.min(spare);
        self.buf.truncate(keep);
    }

    /// File offset of the next unread byte (the start of the next record).
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Bytes waiting that do not yet make a whole record.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next record, a skipped damaged one, or [`Next::NeedMore`].
    pub fn next_record(&mut self) -> Next<'_> {
        let offset = self.offset();
        let avail = &self.buf[self.pos..];
        if avail.len() < HEADER {
            return Next::NeedMore;
        }
        if !valid_header(avail) {
            // Resynchronise on the next position that holds a valid header.
            let found = (1..=avail.len() - HEADER).find(|&i| valid_header(&avail[i..]));
            self.pos += found.unwrap_or(avail.len() - HEADER + 1);
            if std::mem::replace(&mut self.resyncing, found.is_none()) {
                // Still inside the damage reported before.
                return if found.is_some() {
                    self.next_record()
                } else {
                    Next::NeedMore
                };
            }
            return Next::Corrupt {
                offset,
                what: "the length's CRC does not match",
            };
        }
        self.resyncing = false;
        let avail = &self.buf[self.pos..];
        let len = u64::from_le_bytes(avail[..8].try_into().unwrap_or_default()) as usize;
        let total = HEADER + len + FOOTER;
        if avail.len() < total {
            return Next::NeedMore;
        }
        let data_crc =
            u32::from_le_bytes(avail[HEADER + len..total].try_into().unwrap_or_default());
        let start = self.pos + HEADER;
        self.pos += total;
        let data = &self.buf[start..start + len];
        if masked_crc(data) != data_crc {
            return Next::Corrupt {
                offset,
                what: "the data's CRC does not match",
            };
        }
        Next::Record { offset, data }
    }
}

/// Whether `b` starts with a header whose length CRC matches and whose length is sane.
fn valid_header(b: &[u8]) -> bool {
    if b.len() < HEADER {
        return false;
    }
    let crc = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
    masked_crc(&b[..8]) == crc
        && u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) <= MAX_RECORD
}

/// The framed form of `data` (for tests and generated files).
pub fn frame(data: &[u8], out: &mut Vec<u8>) {
    let len = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(bytes: &[u8], chunk: usize) -> Vec<String> {
        let mut f = Framing::new();
        let mut out = Vec::new();
        for piece in bytes.chunks(chunk.max(1)) {
            f.feed(piece);
            loop {
                match f.next_record() {
                    Next::Record { offset, data } => {
                        out.push(format!("{offset}:{}", String::from_utf8_lossy(data)))
                    }
                    Next::Corrupt { offset, .. } => out.push(format!("{offset}:corrupt")),
                    Next::NeedMore => break,
                }
            }
        }
        if f.pending() > 0 {
            out.push(format!("{}:truncated", f.offset()));
        }
        out
    }

    #[test]
    fn the_masked_crc_matches_tensorflow() {
        // The header of a 72-byte record as TensorBoard 2.21's writer framed it (the first
        // record of its event files: the `brain.Event:2` file version and its source).
        let len = 72u64.to_le_bytes();
        assert_eq!(masked_crc(&len).to_le_bytes(), [0xfe, 0x92, 0x48, 0x9d]);
        assert_eq!(masked_crc(b""), 0xa282_ead8);
    }

    #[test]
    fn records_come_out_whatever_the_chunking() {
        let mut bytes = Vec::new();
        for word in ["alpha", "", "gamma delta"] {
            frame(word.as_bytes(), &mut bytes);
        }
        for chunk in [1, 3, 7, 16, 1000] {
            assert_eq!(
                records(&bytes, chunk),
                ["0:alpha", "21:", "37:gamma delta"],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn a_cut_tail_waits_and_damaged_records_are_skipped() {
        let mut bytes = Vec::new();
        for word in ["one", "two", "three"] {
            frame(word.as_bytes(), &mut bytes);
        }
        let cut = &bytes[..bytes.len() - 3];
        assert_eq!(records(cut, 5), ["0:one", "19:two", "38:truncated"]);
        let mut data_hit = bytes.clone();
        data_hit[19 + HEADER] ^= 0x40; // "two" -> damaged data
        assert_eq!(records(&data_hit, 4), ["0:one", "19:corrupt", "38:three"]);
        let mut len_hit = bytes.clone();
        len_hit[19 + 2] ^= 0x01; // the length of "two"
        assert_eq!(records(&len_hit, 64), ["0:one", "19:corrupt", "38:three"]);
    }
}
