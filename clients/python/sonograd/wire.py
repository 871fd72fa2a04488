"""What goes over the wire to ``sonograd listen --udp``: per-event JSON lines and the compact
per-step datagram (both documented in sonograd's ``docs/listen.md``). Standard library only.
"""

import json
import math
import struct
import time

#: Version of the JSON event lines (``"v"``).
FORMAT_VERSION = 1
#: Version of the compact step datagram (its fourth byte).
COMPACT_VERSION = 1
#: The compact datagram's first four bytes: NUL, ``S``, ``G``, version.
COMPACT_MAGIC = b"\x00SG" + bytes([COMPACT_VERSION])
# listen accepts datagrams up to 32 KiB by default; stay well below.
MAX_DATAGRAM = 8192

FLAG_LOSS = 1
FLAG_LR = 2
FLAG_TOTAL = 4
FLAG_RANK = 8
FLAG_SHARD = 16

# magic, flags, run length, layers, step, epoch, rank, world, part, parts, first layer,
# reserved, time, loss, lr, total
_HEADER = struct.Struct("<4sBBHQIIIHHIIdddd")
HEADER_SIZE = _HEADER.size  # 72
#: A layer value meaning "no gradient this step" (any negative value does).
ABSENT = -1.0


def _number(x):
    """A float as JSON allows it: non-finite values as the strings sonograd reads."""
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return x


def event_line(kind, step, epoch=0, when=None, run=None, rank=None, **fields):
    """One event as a JSON line (no newline). ``value`` fields may be NaN or infinite."""
    event = {
        "v": FORMAT_VERSION,
        "step": int(step),
        "epoch": int(epoch),
        "time": time.time() if when is None else float(when),
        "kind": kind,
    }
    if run is not None:
        event["run"] = str(run)
    if rank is not None:
        event["rank"] = int(rank)
    for key, value in fields.items():
        event[key] = _number(value) if key in ("value", "lr") else value
    return json.dumps(event, separators=(",", ":"), allow_nan=False)


def pack_datagrams(lines, max_bytes=MAX_DATAGRAM):
    """Joins lines with newlines into as few datagrams of at most ``max_bytes`` as possible.
    A single line longer than ``max_bytes`` gets a datagram of its own."""
    out, current, size = [], [], 0
    for line in lines:
        data = line.encode("utf-8")
        extra = len(data) + (1 if current else 0)
        if current and size + extra > max_bytes:
            out.append(b"\n".join(current))
            current, size = [], 0
            extra = len(data)
        current.append(data)
        size += extra
    if current:
        out.append(b"\n".join(current))
    return out


def _utf8_cut(text, limit=255):
    data = str(text).encode("utf-8")
    if len(data) <= limit:
        return data
    return data[:limit].decode("utf-8", "ignore").encode("utf-8")


class Layout:
    """A model's layers cut into datagram-sized parts, with each part's names packed once:
    ``parts`` is a list of ``(first layer index, count, names bytes, values struct)``."""

    def __init__(self, names, run=None, max_bytes=MAX_DATAGRAM):
        self.names = list(names)
        self.run = _utf8_cut(run) if run is not None else b""
        room = max(300, max_bytes - HEADER_SIZE - len(self.run))
        self.parts = []
        first, blob, count = 0, [], 0
        size = 0
        for i, name in enumerate(self.names):
            data = _utf8_cut(name)
            item = bytes([len(data)]) + data
            if count and size + len(item) + 8 > room:
                self.parts.append(self._part(first, count, blob))
                first, blob, count, size = i, [], 0, 0
            blob.append(item)
            count += 1
            size += len(item) + 8
        self.parts.append(self._part(first, count, blob))

    @staticmethod
    def _part(first, count, blob):
        return first, count, b"".join(blob), struct.Struct("<%dd" % count)

    def pack(self, step, values, epoch=0, when=None, rank=None, loss=None, lr=None,
             total=None, shard_world=0):
        """This step's datagrams. ``values[i]`` is layer ``i``'s gradient norm (with
        ``shard_world`` > 0: this rank's sum of squares over its shards), negative or ``None``
        when the layer has no gradient this step; ``total`` likewise for the whole model."""
        flags = FLAG_RANK if rank is not None else 0
        if shard_world:
            flags |= FLAG_SHARD
        first_flags = flags
        if loss is not None:
            first_flags |= FLAG_LOSS
        if lr is not None:
            first_flags |= FLAG_LR
        if total is not None and not total < 0:
            first_flags |= FLAG_TOTAL
        when = time.time() if when is None else float(when)
        vals = [ABSENT if v is None else float(v) for v in values]
        out = []
        n_parts = len(self.parts)
        for n, (first, count, names, packer) in enumerate(self.parts):
            header = _HEADER.pack(
                COMPACT_MAGIC, first_flags if n == 0 else flags, len(self.run), count,
                int(step), int(epoch), int(rank or 0), int(shard_world), n, n_parts, first, 0,
                when, _f(loss), _f(lr), _f(total))
            out.append(b"".join((header, self.run, names, packer.pack(*vals[first:first + count]))))
        return out

    def templates(self, rank=None, shard_world=0):
        """Each part's datagram with the fields that change every step (flags for loss, lr
        and total; step, epoch, time, loss, lr, total, values) left zero, for a writer that
        fills them in place (the native path): ``(bytes, offset of the values, first layer,
        count)`` per part."""
        flags = FLAG_RANK if rank is not None else 0
        if shard_world:
            flags |= FLAG_SHARD
        out = []
        n_parts = len(self.parts)
        for n, (first, count, names, _) in enumerate(self.parts):
            header = _HEADER.pack(COMPACT_MAGIC, flags, len(self.run), count, 0, 0,
                                  int(rank or 0), int(shard_world), n, n_parts, first, 0,
                                  0.0, 0.0, 0.0, 0.0)
            head = header + self.run + names
            out.append((head + bytes(8 * count), len(head), first, count))
        return out


def pack_step(step, values, names, run=None, max_bytes=MAX_DATAGRAM, **fields):
    """One step as compact datagrams (see :meth:`Layout.pack`; a model's sonifier keeps its
    :class:`Layout` instead of rebuilding it each step)."""
    return Layout(names, run=run, max_bytes=max_bytes).pack(step, values, **fields)


def _f(x):
    return 0.0 if x is None else float(x)


def unpack_step(datagram):
    """Reads a compact datagram back (for tests): a dict of the header and ``layers``, a list
    of ``(index, name, value)`` (value ``None``: no gradient)."""
    (magic, flags, nrun, nlay, step, epoch, rank, world, part, parts, first, _reserved, when,
     loss, lr, total) = _HEADER.unpack_from(datagram, 0)
    if magic != COMPACT_MAGIC:
        raise ValueError("not a compact sonograd datagram")
    at = HEADER_SIZE
    run = datagram[at:at + nrun].decode("utf-8") if nrun else None
    at += nrun
    names = []
    for _ in range(nlay):
        n = datagram[at]
        names.append(datagram[at + 1:at + 1 + n].decode("utf-8"))
        at += 1 + n
    values = struct.unpack_from("<%dd" % nlay, datagram, at)
    layers = [(first + i, name, None if v < 0 else v)
              for i, (name, v) in enumerate(zip(names, values))]
    return {
        "step": step, "epoch": epoch, "time": when, "run": run,
        "rank": rank if flags & FLAG_RANK else None,
        "world": world if flags & FLAG_SHARD else 0, "part": part, "parts": parts,
        "loss": loss if flags & FLAG_LOSS else None,
        "lr": lr if flags & FLAG_LR else None,
        "total": total if flags & FLAG_TOTAL else None,
        "layers": layers,
    }
