"""Which usbrain modules one ``usbrain heal`` call runs through, from the CLI to the written NIfTI.

Runs the command in this process under a profiler hook that records every function call into a
usbrain source file (module and class bodies run by imports are left out), then prints the
modules in the order they were first entered with how many calls each took, and the modules of
the tasks layer among them.

    python bench/walk.py --checkpoint runs/demo/pipeline --image t1.nii.gz --mask m.nii.gz
"""

from __future__ import annotations

import argparse
import inspect
import sys
import tempfile
from collections import Counter
from pathlib import Path

import usbrain
from usbrain.cli import main as cli

PACKAGE = Path(usbrain.__file__).resolve().parent


def _module(filename: str) -> str | None:
    path = Path(filename)
    if not path.is_relative_to(PACKAGE):
        return None
    return str(path.relative_to(PACKAGE).with_suffix(""))


def trace(argv: list[str]) -> list[str]:
    """The usbrain module of every Python call the command ``argv`` makes, in order."""
    calls: list[str] = []

    def hook(frame, event, arg):
        if event == "call" and frame.f_code.co_flags & inspect.CO_OPTIMIZED:  # functions only
            module = _module(frame.f_code.co_filename)
            if module is not None:
                calls.append(module)

    sys.setprofile(hook)
    try:
        code = cli(argv)
    finally:
        sys.setprofile(None)
    if code:
        raise SystemExit(code)
    return calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--image", required=True)
    parser.add_argument("--mask", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["heal", "--checkpoint", args.checkpoint, "--image", args.image]
        argv += ["--mask", args.mask] if args.mask else []
        calls = trace([*argv, "--out", str(Path(tmp) / "out")])
    counts = Counter(calls)
    print(f"{len(counts)} modules, in the order first entered (calls):")
    for module in dict.fromkeys(calls):
        print(f"  {module:<28} {counts[module]}")
    tasks = [m for m in dict.fromkeys(calls) if m.startswith("tasks/")]
    print(f"tasks-layer modules: {len(tasks)} ({', '.join(tasks)})")


if __name__ == "__main__":
    main()
