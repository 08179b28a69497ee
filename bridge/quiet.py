"""Keep C libraries' stderr chatter (libjack, ALSA, PortAudio) out of the user's terminal.

libjack prints several lines when no server runs and alsa-lib prints raw errors
when a device is missing, before we can say anything. Around such calls,
file descriptor 2 is pointed at a temporary file; what they wrote is logged
at debug level (``-vv`` shows it) and our own one-line message stays the only
one the user reads.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator

log = logging.getLogger(__name__)


@contextlib.contextmanager
def quiet_stderr(what: str) -> Iterator[list[str]]:
    """Capture fd 2 for the duration; yields a list that holds the captured lines afterwards."""
    lines: list[str] = []
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (embedded): nothing to hide
        yield lines
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines.extend(tmp.read().decode(errors="replace").splitlines())
            for line in lines:
                log.debug("%s: %s", what, line)
