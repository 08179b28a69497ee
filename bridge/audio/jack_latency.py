"""JACK port latency ranges (JACK-Client does not wrap this part of the JACK API; cffi does).

A client with an internal delay reports it so that JACK (and DAWs that
compensate, e.g. Ardour) know when what enters its inputs comes out of its
outputs. The daemon is such a client: a control change or live input reaches
``out_L``/``out_R`` after the frames buffered ahead (``--buffer-frames``).
Per JACK's latency model:

- capture latency of our outputs = the largest capture latency of our inputs
  (``midi_in``, ``in_L``, ``in_R``) + our internal delay;
- playback latency of our inputs = the largest playback latency of our
  outputs + our internal delay.

JACK calls the latency callback (not the real-time thread) when the graph
changes; :meth:`PortLatency.recompute` asks it to when the internal delay
changes (``/buffer``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import cffi

log = logging.getLogger(__name__)

CAPTURE, PLAYBACK = 0, 1

_ffi = cffi.FFI()
_ffi.cdef("""
typedef struct _jack_client jack_client_t;
typedef struct _jack_port jack_port_t;
typedef struct { uint32_t min; uint32_t max; } jack_latency_range_t;
typedef void (*JackLatencyCallback)(int mode, void *arg);
int jack_set_latency_callback(jack_client_t *client, JackLatencyCallback cb, void *arg);
void jack_port_get_latency_range(jack_port_t *port, int mode, jack_latency_range_t *range);
void jack_port_set_latency_range(jack_port_t *port, int mode, jack_latency_range_t *range);
int jack_recompute_total_latencies(jack_client_t *client);
jack_port_t *jack_port_by_name(jack_client_t *client, const char *port_name);
""")
_lib = None


def _jack_lib():
    global _lib
    if _lib is None:
        import jack

        _lib = _ffi.dlopen(jack._libname)
    return _lib


def _ptr(kind: str, obj) -> object:
    """Our cffi pointer for a JACK-Client object (``jack.Client`` / ``jack.Port``)."""
    import jack

    return _ffi.cast(kind, int(jack._ffi.cast("uintptr_t", obj._ptr)))


def latency_range(client, port_name: str, mode: int) -> tuple[int, int]:
    """(min, max) latency in frames of any port, CAPTURE or PLAYBACK."""
    lib = _jack_lib()
    port = lib.jack_port_by_name(_ptr("jack_client_t *", client), port_name.encode())
    if port == _ffi.NULL:
        raise ValueError(f"no JACK port {port_name!r}")
    rng = _ffi.new("jack_latency_range_t *")
    lib.jack_port_get_latency_range(port, mode, rng)
    return int(rng.min), int(rng.max)


class PortLatency:
    """Keeps the latency ranges of a client's ports in step with its internal delay (frames).

    Every input port of the client (audio and MIDI, also ones registered later)
    leads to every output port through that delay.
    """

    def __init__(self, client, internal: Callable[[], tuple[int, int]]) -> None:
        """Register on ``client`` (before ``activate``); ``internal()`` returns (min, max) frames."""
        self._lib = _jack_lib()
        self._jack_client = client
        self._client = _ptr("jack_client_t *", client)
        self._internal = internal
        self._cb = _ffi.callback("void(int, void *)", self._on_latency)  # kept alive with self
        if self._lib.jack_set_latency_callback(self._client, self._cb, _ffi.NULL) != 0:
            raise RuntimeError("jack_set_latency_callback failed")

    def _on_latency(self, mode: int, _arg) -> None:
        try:
            lo, hi = self._internal()
            c = self._jack_client
            inputs = [_ptr("jack_port_t *", p) for p in (*c.inports, *c.midi_inports)]
            outputs = [_ptr("jack_port_t *", p) for p in (*c.outports, *c.midi_outports)]
            src, dst = (inputs, outputs) if mode == CAPTURE else (outputs, inputs)
            rng = _ffi.new("jack_latency_range_t *")
            up_lo = up_hi = 0
            for port in src:
                self._lib.jack_port_get_latency_range(port, mode, rng)
                up_lo, up_hi = max(up_lo, rng.min), max(up_hi, rng.max)
            rng.min, rng.max = up_lo + lo, up_hi + hi
            for port in dst:
                self._lib.jack_port_set_latency_range(port, mode, rng)
        except Exception:  # a callback must not raise into JACK
            log.exception("JACK latency callback failed")

    def recompute(self) -> None:
        """The internal delay changed: have JACK call the callback again."""
        self._lib.jack_recompute_total_latencies(self._client)
