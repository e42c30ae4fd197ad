"""Fingerprints of what the tasks write for fixed seeds: one line per output, so two commits'
runs can be compared byte for byte (a restructuring must leave them equal).

Runs, through the CLI, on one checkpoint and one cohort: heal with and without a mask, lesion
with a mask and ``--propose``, condition, generate (pathological and ``--healthy``) and the
benchmark tables (``--features none``). Each output volume is fingerprinted by the SHA-256 of its
data and affine, each JSON by its values minus times and versions.

    python bench/behaviour.py --checkpoint runs/demo/pipeline --data runs/demo/cohort \\
        --out runs/behaviour-before.json [--work DIR] [--steps 10]
    python bench/behaviour.py --compare runs/behaviour-before.json runs/behaviour-after.json
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

# Values that differ between two runs of the same commit (or between commits by design).
VOLATILE = ("seconds", "time", "version", "date", "host", "command", "path", "elapsed")


def _stable(value: object) -> object:
    if isinstance(value, dict):
        return {
            k: _stable(v)
            for k, v in sorted(value.items())
            if not any(word in k.lower() for word in VOLATILE)
        }
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def fingerprint(file: Path) -> str:
    """The SHA-256 of a volume's data and affine, or of a JSON file's stable values."""
    digest = hashlib.sha256()
    if file.name.endswith((".nii", ".nii.gz")):
        image = nib.load(file)
        digest.update(np.asarray(image.dataobj).tobytes())
        digest.update(np.asarray(image.affine, np.float64).tobytes())
    else:
        digest.update(json.dumps(_stable(json.loads(file.read_text())), sort_keys=True).encode())
    return digest.hexdigest()[:16]


def _usbrain(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "usbrain", *args], check=True)


def _first_rows(manifest: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The first lesioned and the first healthy row of a cohort manifest."""
    rows = list(csv.DictReader(manifest.open()))
    sick = next(r for r in rows if r.get("mask"))
    healthy = next(r for r in rows if r is not sick and r.get("healthy_image"))
    return sick, healthy


def run_all(checkpoint: Path, data: Path, work: Path, steps: int) -> dict[str, str]:
    """Every task's outputs in ``work``, fingerprinted by their path under it."""
    manifest = data / "manifest.csv"
    sick, healthy = _first_rows(manifest)
    root = manifest.parent
    image, mask = root / sick["image"], root / sick["mask"]
    clean = root / healthy["healthy_image"]
    common = ("--checkpoint", str(checkpoint), "--seed", "3", "--steps", str(steps))
    _usbrain(
        "heal", *common, "--image", str(image), "--mask", str(mask), "--out", str(work / "heal")
    )
    _usbrain("heal", *common, "--image", str(image), "--out", str(work / "heal-nomask"))
    _usbrain(
        "lesion", *common, "--image", str(clean), "--mask", str(mask), "--out", str(work / "lesion")
    )
    _usbrain("lesion", *common, "--image", str(clean), "--propose", "--out", str(work / "propose"))
    _usbrain("condition", *common, "--mask", str(mask), "--out", str(work / "condition"))
    _usbrain("generate", *common, "--out", str(work / "generate"))
    _usbrain("generate", *common, "--healthy", "--out", str(work / "healthy"))
    _usbrain(
        "benchmark",
        "--checkpoint",
        str(checkpoint),
        "--data",
        str(manifest),
        "--split",
        "val",
        "--features",
        "none",
        "--out",
        str(work / "benchmark"),
    )
    files = sorted(
        f for f in work.rglob("*") if f.is_file() and f.name.endswith((".nii.gz", ".json"))
    )
    return {str(f.relative_to(work)): fingerprint(f) for f in files}


def compare(before: Path, after: Path) -> int:
    a, b = json.loads(before.read_text()), json.loads(after.read_text())
    differ = sorted(k for k in a.keys() & b.keys() if a[k] != b[k])
    for k in differ:
        print(f"differs  {k}")
    for k in sorted(a.keys() - b.keys()):
        print(f"gone     {k}")
    for k in sorted(b.keys() - a.keys()):
        print(f"new      {k}")
    same = len(a.keys() & b.keys()) - len(differ)
    print(f"{same} of {len(a)} outputs identical")
    return 1 if differ or a.keys() != b.keys() else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--data", type=Path, help="cohort folder (with manifest.csv)")
    parser.add_argument("--out", type=Path, help="JSON of fingerprints to write")
    parser.add_argument("--work", type=Path, default=None, help="keep the outputs here")
    parser.add_argument("--steps", type=int, default=10, help="sampling steps of every task")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    args = parser.parse_args()
    if args.compare:
        sys.exit(compare(*args.compare))
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        prints = run_all(args.checkpoint.resolve(), args.data.resolve(), work, args.steps)
    args.out.write_text(json.dumps(prints, indent=1) + "\n")
    print(f"{len(prints)} outputs fingerprinted: {args.out}")


if __name__ == "__main__":
    main()
