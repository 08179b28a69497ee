"""KV windows as rings of W + 1 slots, written in place (shared by the MRT2 and v1 graphs).

A frame's keys/values go to slot ``step % (W + 1)`` of every head; attention runs over the
whole ring with the slots written so far marked valid (no positions, so slot order does not
matter). The runtime binds one buffer as both ``past.<name>`` and ``present.<name>``
(graph metadata ``mrt.inplace_state``), so ScatterND writes one slot instead of copying the
window.
"""

from __future__ import annotations

import numpy as np

from bridge import io_names as io

from .graph import GraphBuilder


def ring_write(g: GraphBuilder, name: str, state_shape: list, value: str, index: str) -> str:
    """State ``name`` [N, n, W+1, h] with ``value`` [N, n, 1, h] written at ``index`` [N, n, 3].

    The output is the ``present.<name>`` graph output itself, and the runtime binds one
    buffer as both its ``past.*`` input and ``present.*`` output (graph metadata
    ``mrt.inplace_state``): ScatterND then writes one slot per head in place instead of
    copying the window.
    """
    n, h = state_shape[1], state_shape[3]
    past = g.state(name, np.float32, state_shape)
    out = g.op("ScatterND", [past, index, g.reshape(value, [-1, n, h])], name=io.present(name))
    g.set_present(name, out)
    return out


def ring_slots(g: GraphBuilder, step: str, window: int, heads: int) -> tuple[str, str]:
    """(scatter index [N, n, 3], valid [N, 1, 1, W + 1]) of this frame in every row's rings.

    Row r has seen step[r] frames; this one goes to slot step % (W + 1) of every head
    (index rows (r, head, slot)), and the slots written so far (j <= step) are valid.
    """
    size = window + 1
    rows = g.op("Range", [g.const(0, np.int64), g.op("Squeeze", [g.op("Shape", [step])]), g.const(1, np.int64)])
    spread = g.op("Concat", [g.op("Shape", [step]), g.ints([heads, 1])], axis=0)  # [N, n, 1]
    columns = [g.reshape(rows, [-1, 1, 1]), g.const(np.arange(heads).reshape(1, heads, 1), np.int64),
               g.reshape(g.op("Mod", [step, g.const([size], np.int64)]), [-1, 1, 1])]
    index = g.concat([g.op("Expand", [c, spread]) for c in columns], axis=2)
    slots = g.const(np.arange(size).reshape(1, -1), np.int64)
    valid = g.op("LessOrEqual", [slots, g.op("Unsqueeze", [step, g.ints([1])])])  # [N, W+1]
    return index, g.reshape(valid, [-1, 1, 1, size])
