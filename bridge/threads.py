"""CPU priority of the daemon's threads (Linux nice values are per thread).

Audio first: the threads that make audio (the frame loop, the codec) ask for
a higher priority than the rest of the machine (a game beside us), control
threads (OSC) for a lower one. Raising priority needs root or CAP_SYS_NICE;
without it the thread keeps its priority and one log line says so.
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger(__name__)

AUDIO_NICE = -10  # frame loop and codec threads
CONTROL_NICE = 5  # OSC receive thread: never ahead of audio
_warned = False


def set_thread_nice(nice: int) -> bool:
    """Give the calling thread ``nice``; False (and one log line for raising) if not allowed."""
    global _warned
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        return True
    except (AttributeError, OSError) as exc:
        if nice < 0 and not _warned:
            _warned = True
            log.info("audio threads keep normal CPU priority (%s); run as root or grant CAP_SYS_NICE "
                     "for nice %d", exc, nice)
        return False
