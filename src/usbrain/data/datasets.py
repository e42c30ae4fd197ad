"""Finding the scans of a dataset and splitting them by subject.

Three layouts are understood, chosen by :func:`discover`:

- a manifest CSV with columns ``subject, image, mask, healthy_image, split`` and optionally
  ``participant`` (only ``image`` is required; paths are relative to the CSV's folder, empty
  cells mean "none");
- the ATLAS R2.0 BIDS layout: ``sub-*/ses-*/anat/*_T1w.nii.gz`` with the lesion mask beside it,
  ``*_label-L_desc-T1lesion_mask.nii.gz``;
- a plain folder of healthy T1 NIfTIs (no masks).
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

from usbrain.data.csvfile import read_rows
from usbrain.errors import InputError

MANIFEST_COLUMNS = ("subject", "image", "mask", "healthy_image", "split")
RECORD_COLUMNS = (*MANIFEST_COLUMNS, "participant")
ATLAS_IMAGE_SUFFIX = "_T1w.nii.gz"
ATLAS_MASK_SUFFIX = "_label-L_desc-T1lesion_mask.nii.gz"


class Split(StrEnum):
    TRAIN = "train"
    VAL = "val"
    TEST = "test"


DEFAULT_FRACTIONS: dict[Split, float] = {Split.TRAIN: 0.8, Split.VAL: 0.1, Split.TEST: 0.1}


@dataclass(frozen=True)
class Record:
    """One scan of a dataset: a T1 ``image``, its lesion ``mask`` (None: not given) and, where
    known, the ``healthy_image`` it was made from (synthetic data), with its ``split``.

    ``subject`` names the scan; ``participant`` the person it is of, where one person has
    several scans (ATLAS sessions): splits are drawn per participant ("": the scan's own).
    ``columns``: a manifest's other cells by column (empty for the other layouts).
    """

    subject: str
    image: Path
    mask: Path | None = None
    healthy_image: Path | None = None
    split: Split | None = None
    participant: str = ""
    columns: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def person(self) -> str:
        return self.participant or self.subject


def read_manifest(path: str | Path) -> list[Record]:
    """Read a manifest CSV; missing optional columns are empty, other columns (the built-in
    cohort's ``kind``, ``subtype`` …) are kept in :attr:`Record.columns`."""
    path = Path(path)
    records, seen = [], set()
    for row in read_rows(path, ("image",)):
        image = row.file("image", required=True)
        subject = row.get("subject") or _subject_from_name(image)
        if subject in seen:
            raise InputError(f"{path}: line {row.line}: subject {subject!r} appears twice")
        seen.add(subject)
        split_cell = row.get("split").lower()
        if split_cell and split_cell not in set(Split):
            raise InputError(
                f"{path}: line {row.line}: split {split_cell!r} is not one of train, val, test"
            )
        records.append(
            Record(
                subject=subject,
                image=image,
                mask=row.file("mask"),
                healthy_image=row.file("healthy_image"),
                split=Split(split_cell) if split_cell else None,
                participant=row.get("participant"),
                columns={k: v for k, v in row.cells.items() if k not in RECORD_COLUMNS},
            )
        )
    if not records:
        raise InputError(f"{path}: manifest lists no scans")
    return records


def write_manifest(
    records: Iterable[Record], path: str | Path, extra: dict[str, Sequence[str]] | None = None
) -> None:
    """Write ``records`` as a manifest CSV with paths relative to its folder where possible.

    ``extra`` adds columns (name → one value per record); a ``participant`` column is added
    where any record has one. Not atomic by itself: write it inside
    :func:`usbrain.files.atomic_dir` or :func:`usbrain.files.atomic_file`.
    """
    path = Path(path)
    records = list(records)
    extra = dict(extra or {})
    if any(r.participant for r in records):
        extra["participant"] = [r.participant for r in records]

    def rel(p: Path | None) -> str:
        if p is None:
            return ""
        try:
            return str(Path(p).relative_to(path.parent))
        except ValueError:
            return str(p)

    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*MANIFEST_COLUMNS, *extra])
        for i, r in enumerate(records):
            writer.writerow(
                [
                    r.subject,
                    rel(r.image),
                    rel(r.mask),
                    rel(r.healthy_image),
                    r.split or "",
                    *(values[i] for values in extra.values()),
                ]
            )


_NIFTI = re.compile(r"\.nii(\.gz)?$")


def _subject_from_name(path: Path) -> str:
    return _NIFTI.sub("", path.name)


def discover_atlas(root: str | Path) -> list[Record]:
    """Scans of an ATLAS R2.0-style BIDS tree; a session without a mask file gets ``mask=None``
    (ATLAS' test release hides its masks)."""
    root = Path(root)
    records = []
    for image in sorted(root.glob(f"**/sub-*/ses-*/anat/*{ATLAS_IMAGE_SUFFIX}")):
        mask = image.with_name(image.name[: -len(ATLAS_IMAGE_SUFFIX)] + ATLAS_MASK_SUFFIX)
        session = image.parent.parent.name
        subject = image.parent.parent.parent.name
        records.append(
            Record(
                subject=f"{subject}_{session}",
                image=image,
                mask=mask if mask.exists() else None,
                participant=subject,
            )
        )
    return records


def discover_folder(root: str | Path) -> list[Record]:
    """Every NIfTI directly in ``root``, as healthy scans without masks."""
    root = Path(root)
    images = sorted(p for p in root.iterdir() if p.is_file() and _NIFTI.search(p.name))
    return [Record(subject=_subject_from_name(p), image=p) for p in images]


def discover(path: str | Path) -> list[Record]:
    """The scans at ``path``: a manifest CSV, an ATLAS BIDS tree, or a folder of T1s."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: not found")
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise InputError(f"{path}: expected a folder or a manifest .csv")
        return read_manifest(path)
    records = discover_atlas(path) or discover_folder(path)
    if not records:
        raise InputError(
            f"{path}: no scans found (expected a manifest .csv, an ATLAS BIDS tree "
            "sub-*/ses-*/anat/*_T1w.nii.gz, or a folder of .nii/.nii.gz files)"
        )
    return records


def _subject_rank(subject: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{subject}".encode()).hexdigest()


def assign_splits(
    records: Sequence[Record], fractions: dict[Split, float] | None = None, seed: int = 0
) -> list[Record]:
    """Give every record without a split one, deterministically by participant.

    Participants (:attr:`Record.person`: all scans of one person share a split) are ordered by a
    hash of ``(seed, participant)`` and cut by ``fractions``; records that already have a split
    keep it, and the other scans of their participant take it too. With three or more
    unassigned participants, validation and test each get at least one. The same participants
    and seed always give the same splits, whatever the order of ``records``.

    >>> from pathlib import Path
    >>> recs = [Record(f"s{i}", Path(f"s{i}.nii.gz")) for i in range(10)]
    >>> sorted(r.split.value for r in assign_splits(recs))
    ['test', 'train', 'train', 'train', 'train', 'train', 'train', 'train', 'train', 'val']
    """
    fractions = fractions or DEFAULT_FRACTIONS
    chosen: dict[str, Split] = {r.person: r.split for r in records if r.split is not None}
    todo = sorted(
        {r.person for r in records if r.person not in chosen},
        key=lambda person: _subject_rank(person, seed),
    )
    n = len(todo)
    n_val = round(n * fractions.get(Split.VAL, 0.0))
    n_test = round(n * fractions.get(Split.TEST, 0.0))
    if n >= 3:
        n_val, n_test = max(n_val, 1), max(n_test, 1)
    for i, person in enumerate(todo):
        chosen[person] = (
            Split.VAL if i < n_val else Split.TEST if i < n_val + n_test else Split.TRAIN
        )
    return [r if r.split is not None else replace(r, split=chosen[r.person]) for r in records]
