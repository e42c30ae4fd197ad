"""Progress bars: redrawn on a terminal, plain timed lines in a log file (usbrain.progress)."""

from __future__ import annotations

import io

from tqdm import tqdm

from usbrain import progress
from usbrain.progress import LogBar, progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_tqdm_redraws():
    stream = Terminal()
    bar = progress_bar(range(3), file=stream, desc="x")
    assert type(bar) is tqdm
    list(bar)
    assert "\r" in stream.getvalue()


def test_a_log_gets_whole_lines_at_most_every_interval(monkeypatch):
    monkeypatch.setattr(progress, "LOG_INTERVAL_S", 3600.0)
    log = io.StringIO()
    bar = progress_bar(range(500), file=log, desc="train", unit="step")
    assert isinstance(bar, LogBar)
    for i in bar:
        bar.set_postfix(loss=f"{i:.1f}")  # per step, as the training loop does
        for _ in progress_bar(range(5), file=log, desc="chain", leave=False):
            pass
    text = log.getvalue()
    assert "\r" not in text and "\x1b" not in text
    # Nothing while the interval has not passed; the outer bar's last count when it closes;
    # the short inner chains say nothing at all.
    assert text.splitlines() == [line for line in text.splitlines() if line.startswith("train")]
    assert len(text.splitlines()) == 1 and "500/500" in text


def test_a_log_line_comes_each_interval(monkeypatch):
    monkeypatch.setattr(progress, "LOG_INTERVAL_S", 0.0)
    log = io.StringIO()
    for _ in progress_bar(range(4), file=log, desc="cohort"):
        pass
    lines = log.getvalue().splitlines()
    assert [line.split("|")[-1].split()[0] for line in lines] == ["1/4", "2/4", "3/4", "4/4"]


def test_a_stalled_count_is_not_written_again(monkeypatch):
    monkeypatch.setattr(progress, "LOG_INTERVAL_S", 0.0)
    log = io.StringIO()
    bar = progress_bar(range(3), file=log, desc="cohort")
    for _ in bar:
        bar.refresh()  # what tqdm's monitor does when an update takes longer than maxinterval
        bar.refresh()
    assert [line.split("|")[-1].split()[0] for line in log.getvalue().splitlines()] == [
        "1/3",
        "2/3",
        "3/3",
    ]
