"""Claimed, atomic, umask-respecting outputs (usbrain.files)."""

from __future__ import annotations

import logging
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from usbrain.errors import OutputExistsError
from usbrain.files import ClaimedError, atomic_dir, atomic_file, claim, staging_path


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def holder(path, ready):
    """A process that claims ``path``, says so by creating ``ready``, then waits to be killed."""
    code = textwrap.dedent(
        f"""
        import pathlib, time
        from usbrain.files import claim
        with claim({str(path)!r}):
            pathlib.Path({str(ready)!r}).touch()
            time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert proc.poll() is None, "the holder died before claiming"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return proc


def test_atomic_dir_appears_whole_and_refuses_an_existing_one(tmp_path):
    out = tmp_path / "result"
    with atomic_dir(out) as tmp:
        assert not out.exists() and tmp.parent == tmp_path
        (tmp / "a.txt").write_text("one")
    assert (out / "a.txt").read_text() == "one"
    with pytest.raises(OutputExistsError, match="already exists"), atomic_dir(out):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result"]  # no lock, no partial


def test_overwrite_replaces_only_a_complete_result(tmp_path):
    out = tmp_path / "result"
    with atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(out, overwrite=True) as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("killed")
    assert (out / "a.txt").read_text() == "old"
    with atomic_dir(out, overwrite=True) as tmp:
        (tmp / "b.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result"]


def test_atomic_file_keeps_the_suffix_for_format_sniffing_writers(tmp_path):
    out = tmp_path / "scan.nii.gz"
    with atomic_file(out) as tmp:
        assert tmp.name.endswith(".nii.gz") and tmp.name.startswith(".scan.nii.gz.partial-")
        tmp.write_bytes(b"x")
    assert out.read_bytes() == b"x"


@pytest.mark.parametrize(
    "umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)]
)
def test_outputs_get_the_modes_the_umask_gives(tmp_path, umask, file_mode, dir_mode):
    old = os.umask(umask)
    try:
        with atomic_file(tmp_path / "a.json") as tmp:
            tmp.write_text("{}")
        with atomic_dir(tmp_path / "folder") as tmp:
            (tmp / "inner.txt").write_text("x")
            with atomic_file(tmp / "inner.nii.gz") as inner:
                inner.write_bytes(b"x")
    finally:
        os.umask(old)
    assert mode(tmp_path / "a.json") == file_mode
    assert mode(tmp_path / "folder") == dir_mode
    assert mode(tmp_path / "folder" / "inner.txt") == file_mode
    assert mode(tmp_path / "folder" / "inner.nii.gz") == file_mode


def test_a_claim_held_by_another_process_refuses_then_frees_when_it_is_killed(tmp_path):
    out = tmp_path / "result"
    proc = holder(out, tmp_path / "ready")
    try:
        with pytest.raises(ClaimedError, match=f"pid {proc.pid}"), claim(out):
            pass
        assert isinstance(ClaimedError("x"), OutputExistsError)  # the CLI's exit 2
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with atomic_dir(out) as tmp:  # the kernel dropped the dead run's lock
        (tmp / "a.txt").write_text("mine")
    assert (out / "a.txt").read_text() == "mine"


def test_nested_claims_of_one_path_share_the_outer_one(tmp_path):
    out = tmp_path / "result"
    with claim(out):
        with atomic_dir(out) as tmp:
            (tmp / "a.txt").write_text("x")
        assert (tmp_path / ".result.lock").exists()  # still held by the outer claim
    assert not (tmp_path / ".result.lock").exists()


def test_a_killed_runs_partials_are_removed_by_the_next_claim(tmp_path, caplog):
    out = tmp_path / "result.nii.gz"
    (tmp_path / ".result.nii.gz.partial-dead").mkdir()
    (tmp_path / ".result.nii.gz.partial-1234.nii.gz").write_bytes(b"half")
    (tmp_path / ".other.partial-dead").mkdir()  # another output's: not ours to remove
    with caplog.at_level(logging.WARNING, logger="usbrain.files"), atomic_file(out) as tmp:
        tmp.write_bytes(b"whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.partial-dead", "result.nii.gz"]
    assert sum("left by a run that was killed" in r.message for r in caplog.records) == 2


def test_a_refused_claim_leaves_no_folder_behind(tmp_path):
    out = tmp_path / "new" / "deeper" / "result"
    with pytest.raises(RuntimeError), claim(out):
        raise RuntimeError("failed before writing")
    assert list(tmp_path.iterdir()) == []


def test_staging_path_is_one_hidden_partial_name(tmp_path):
    staged = staging_path(tmp_path / "run")
    assert staged == tmp_path / ".run.partial-staged"
    staged.mkdir()
    with claim(tmp_path / "run"):  # a leftover of a killed rerun
        assert not staged.exists()
