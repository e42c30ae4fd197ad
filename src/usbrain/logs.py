"""What a command prints on stderr besides its progress: usbrain's own lines, nothing else.

A batch job's log, or a user reading a one-line error, should not have to sift through library
chatter: nibabel's header notes (``pixdim[1,2,3] should be non-zero``), MONAI's and torch's
warnings. Those go nowhere unless ``USBRAIN_DEBUG=1`` is set; usbrain's own notes (a leftover
partial output removed, a manifest row skipped) are ``usbrain: …`` lines.
"""

from __future__ import annotations

import logging
import os
import sys

DEBUG_VARIABLE = "USBRAIN_DEBUG"


class _Stderr(logging.StreamHandler):
    """Writes to the ``sys.stderr`` of the moment (tests swap it), not the one at setup."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def setup() -> None:
    """Route log records and warnings for a command-line run; safe to call more than once."""
    own = logging.getLogger("usbrain")
    if not any(isinstance(h, _Stderr) for h in own.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("usbrain: %(message)s"))
        own.addHandler(handler)
    own.setLevel(logging.INFO)
    own.propagate = False
    if os.environ.get(DEBUG_VARIABLE):
        logging.basicConfig(level=logging.DEBUG)
        return
    logging.captureWarnings(True)  # warnings.warn → the "py.warnings" logger → silenced below
    root = logging.getLogger()
    if not any(isinstance(h, logging.NullHandler) for h in root.handlers):
        root.addHandler(logging.NullHandler())  # a handler, so logging's last resort stays quiet
    from nibabel import imageglobals  # nibabel gives its logger a stderr handler of its own

    imageglobals.logger.handlers.clear()
