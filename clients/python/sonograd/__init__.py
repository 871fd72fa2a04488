"""Hear your own PyTorch training: send its events to ``sonograd listen``.

Standard library only; ``torch`` is imported only when gradients are measured, Lightning and
Transformers only when their callbacks are asked for.

    from sonograd import monitor
    sonifier = monitor(model, port=9107)
    for x, y in loader:
        loss = loss_fn(model(x), y)
        loss.backward()
        sonifier.step(loss=loss, optimizer=optimizer)   # after backward
        optimizer.step()
        optimizer.zero_grad()
    sonifier.close()

Each step goes to ``sonograd listen --udp`` (default 127.0.0.1:9107) as one compact datagram
(``docs/listen.md``); the rare events (run start and end, epochs, evaluations) as JSON lines.

Controls a person sends through ``listen`` (a MIDI knob, an OSC message: ``docs/controls.md``)
come back to the same socket and apply at the next ``step()``: the learning rate (or a scale
on it) and momentum of the optimizer given, pause and resume, ``stop`` (``step()`` raises
:class:`StopTraining`) and ``checkpoint`` (``monitor(..., on_checkpoint=hook)``)::

    sonifier = monitor(model, optimizer=optimizer, on_checkpoint=lambda step: save(step))
    try:
        for x, y in loader:
            ...
            sonifier.step(loss=loss)
            optimizer.step()
    except StopTraining:                                # from sonograd import StopTraining
        pass
    sonifier.close()                                    # run_end, reason "stopped"
"""

from .controls import StopTraining
from .sonifier import DEFAULT_HOST, DEFAULT_PORT, GradientSonifier, UdpSender, layer_of
from .wire import (
    COMPACT_VERSION,
    FORMAT_VERSION,
    event_line,
    Layout,
    pack_datagrams,
    pack_step,
    unpack_step,
)

#: The package's version: the sonograd crate's version (a test checks they agree).
__version__ = "0.1.0"

__all__ = [
    "COMPACT_VERSION",
    "FORMAT_VERSION",
    "GradientSonifier",
    "LightningCallback",
    "SonogradCallback",
    "StopTraining",
    "TransformersCallback",
    "UdpSender",
    "__version__",
    "event_line",
    "Layout",
    "layer_of",
    "monitor",
    "pack_datagrams",
    "pack_step",
    "unpack_step",
]


def monitor(model, host=DEFAULT_HOST, port=DEFAULT_PORT, **kwargs):
    """A :class:`GradientSonifier` for ``model`` sending to ``host:port``."""
    return GradientSonifier(model, host=host, port=port, **kwargs)


def __getattr__(name):
    # The callbacks import their frameworks, so they are defined on first use.
    if name in ("LightningCallback", "SonogradCallback"):
        from .lightning import LightningCallback

        return LightningCallback
    if name == "TransformersCallback":
        from .hf import TransformersCallback

        return TransformersCallback
    raise AttributeError(f"module 'sonograd' has no attribute {name!r}")
