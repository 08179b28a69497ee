"""Checks that a frame loop's audio threads run at the daemon's audio priority."""

from __future__ import annotations

import os
import threading

from bridge.threads import AUDIO_NICE


def assert_audio_priority(loop_thread: threading.Thread, codec_prefix: str) -> None:
    """``loop_thread`` and every live thread named ``codec_prefix*`` run at nice -10 when the
    tests run as root (allowed to raise priority), else at 0 (the request is refused)."""
    expected = AUDIO_NICE if os.geteuid() == 0 else 0
    assert os.getpriority(os.PRIO_PROCESS, loop_thread.native_id) == expected
    codec_tids = [t.native_id for t in threading.enumerate() if t.name.startswith(codec_prefix)]
    assert codec_tids and all(os.getpriority(os.PRIO_PROCESS, tid) == expected for tid in codec_tids)
