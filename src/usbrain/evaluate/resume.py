"""What a benchmark run has finished, kept so that a killed run can continue.

A benchmark on a shipped model samples ten edits per case; on two CPU cores one seed of 24
cases takes hours. Each method's scores (and its output for the first case, for the figures)
are written to a folder as soon as the method is done, under a key of every setting they
depend on. A rerun with ``resume`` reads back what matches its own key; a folder with another
key (other weights, data, seed or sampling settings) is discarded, never mixed in.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np

from usbrain.files import atomic_file

log = logging.getLogger(__name__)


def _normalised(key: dict) -> dict:
    """``key`` as it reads back from JSON (tuples become lists, paths strings)."""
    return json.loads(json.dumps(key, default=str))


class FinishedMethods:
    """Per-method results in ``folder``, valid for ``key`` (JSON-serialisable settings).

    ``resume``: read back what an earlier run with the same key finished; without it the
    folder is started afresh (what this run finishes is still kept, so it can be resumed).
    """

    def __init__(self, folder: Path, key: dict, resume: bool) -> None:
        self.folder = Path(folder)
        self.key = _normalised(key)
        key_file = self.folder / "key.json"
        if self.folder.exists():
            same = key_file.is_file() and json.loads(key_file.read_text()) == self.key
            if resume and not same:
                log.warning("%s: finished methods of other settings; starting afresh", folder)
            if not (resume and same):
                shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        if not key_file.is_file():
            with atomic_file(key_file) as tmp:
                tmp.write_text(json.dumps(self.key, indent=1))

    def _stem(self, task: str, method: str) -> Path:
        return self.folder / f"{task}--{re.sub(r'[^A-Za-z0-9]+', '-', method)}"

    def get(self, task: str, method: str) -> tuple[dict, np.ndarray | None] | None:
        """(results, first case's output or None) of ``method`` on ``task``, if finished."""
        stem = self._stem(task, method)
        scores = stem.with_suffix(".json")
        if not scores.is_file():
            return None
        example = stem.with_suffix(".npy")
        return json.loads(scores.read_text()), np.load(example) if example.is_file() else None

    def put(self, task: str, method: str, results: dict, example: np.ndarray | None) -> None:
        """Keep ``method``'s ``results`` on ``task`` (and its first case's ``example``)."""
        stem = self._stem(task, method)
        if example is not None:
            with atomic_file(stem.with_suffix(".npy"), overwrite=True) as tmp, open(tmp, "wb") as f:
                np.save(f, example)
        # The scores last: a method counts as finished once they are there.
        with atomic_file(stem.with_suffix(".json"), overwrite=True) as tmp:
            tmp.write_text(json.dumps(results))

    def discard(self) -> None:
        """Remove the folder (the run is complete)."""
        shutil.rmtree(self.folder, ignore_errors=True)
