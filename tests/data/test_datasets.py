from __future__ import annotations

from pathlib import Path

import pytest

from usbrain.data.datasets import (
    Record,
    Split,
    assign_splits,
    discover,
    read_manifest,
    write_manifest,
)
from usbrain.errors import InputError


def test_manifest_round_trip_with_relative_paths(tmp_path):
    records = [
        Record("a", tmp_path / "img" / "a.nii.gz", tmp_path / "m" / "a.nii.gz", None, Split.TRAIN),
        Record("b", tmp_path / "img" / "b.nii.gz"),
    ]
    write_manifest(records, tmp_path / "manifest.csv", extra={"kind": ["stroke", ""]})
    text = (tmp_path / "manifest.csv").read_text().splitlines()
    assert text[0] == "subject,image,mask,healthy_image,split,kind"
    assert text[1] == "a,img/a.nii.gz,m/a.nii.gz,,train,stroke"
    assert read_manifest(tmp_path / "manifest.csv") == records


def test_manifest_optional_columns_and_subject_from_file_name(tmp_path):
    (tmp_path / "m.csv").write_text("image\nscans/x01.nii.gz\n")
    (rec,) = read_manifest(tmp_path / "m.csv")
    assert rec == Record("x01", tmp_path / "scans" / "x01.nii.gz")


def test_other_manifest_columns_are_kept_by_record(tmp_path):
    (tmp_path / "m.csv").write_text("subject,image,kind,subtype\na,x.nii.gz,stroke,lacunar\n")
    (rec,) = read_manifest(tmp_path / "m.csv")
    assert rec.columns == {"kind": "stroke", "subtype": "lacunar"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("subject,mask\na,m.nii.gz\n", "no 'image' column"),
        ("subject,image\na,\n", "line 2 has an empty 'image'"),
        ("subject,image\na,x.nii.gz\na,y.nii.gz\n", "subject 'a' appears twice"),
        ("subject,image,split\na,x.nii.gz,training\n", "split 'training'"),
        ("subject,image\n", "lists no scans"),
    ],
)
def test_bad_manifests(tmp_path, text, message):
    (tmp_path / "m.csv").write_text(text)
    with pytest.raises(InputError, match=message):
        read_manifest(tmp_path / "m.csv")


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_atlas_bids_layout(tmp_path):
    anat = tmp_path / "ATLAS_2" / "Training" / "R001" / "sub-r001s001" / "ses-1" / "anat"
    stem = "sub-r001s001_ses-1_space-MNI152NLin2009aSym"
    image = touch(anat / f"{stem}_T1w.nii.gz")
    mask = touch(anat / f"{stem}_label-L_desc-T1lesion_mask.nii.gz")
    test_anat = tmp_path / "ATLAS_2" / "Testing" / "R002" / "sub-r002s001" / "ses-1" / "anat"
    test_image = touch(test_anat / "sub-r002s001_ses-1_space-MNI152NLin2009aSym_T1w.nii.gz")
    assert discover(tmp_path) == [
        Record("sub-r002s001_ses-1", test_image, None, participant="sub-r002s001"),  # no mask
        Record("sub-r001s001_ses-1", image, mask, participant="sub-r001s001"),
    ]


def test_atlas_sessions_of_one_participant_share_a_split(tmp_path):
    for person in range(20):
        for session in (1, 2, 3):
            anat = tmp_path / f"sub-r{person:03d}" / f"ses-{session}" / "anat"
            touch(anat / f"sub-r{person:03d}_ses-{session}_T1w.nii.gz")
    records = assign_splits(discover(tmp_path))
    splits: dict[str, set] = {}
    for r in records:
        splits.setdefault(r.participant, set()).add(r.split)
    assert len(splits) == 20 and all(len(s) == 1 for s in splits.values())
    assert {r.split for r in records} == set(Split)
    # a participant with one session already placed takes the others along
    given = [
        Record("a_1", Path("a1"), participant="a", split=Split.TEST),
        Record("a_2", Path("a2"), participant="a"),
    ]
    assert [r.split for r in assign_splits(given)] == [Split.TEST, Split.TEST]


def test_participant_column_round_trips(tmp_path):
    records = [
        Record("s_1", tmp_path / "a.nii.gz", participant="s"),
        Record("t", tmp_path / "b.nii.gz"),
    ]
    write_manifest(records, tmp_path / "m.csv")
    assert read_manifest(tmp_path / "m.csv") == records


def test_plain_folder_of_healthy_scans(tmp_path):
    a = touch(tmp_path / "IXI002-Guys.nii.gz")
    b = touch(tmp_path / "IXI012-HH.nii")
    touch(tmp_path / "notes.txt")
    assert discover(tmp_path) == [Record("IXI002-Guys", a), Record("IXI012-HH", b)]


def test_discover_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        discover(tmp_path / "nope")
    with pytest.raises(InputError, match="no scans found"):
        discover(tmp_path)
    touch(tmp_path / "list.txt")
    with pytest.raises(InputError, match=r"manifest \.csv"):
        discover(tmp_path / "list.txt")


def test_splits_are_deterministic_by_subject_and_keep_given_ones():
    records = [Record(f"sub-{i:03d}", Path(f"{i}.nii.gz")) for i in range(50)]
    records[0] = Record("sub-000", Path("0.nii.gz"), split=Split.TEST)
    a = {r.subject: r.split for r in assign_splits(records)}
    b = {r.subject: r.split for r in assign_splits(list(reversed(records)))}
    assert a == b
    assert a["sub-000"] == Split.TEST
    counts = {s: sum(v == s for v in a.values()) for s in Split}
    assert counts == {Split.TRAIN: 39, Split.VAL: 5, Split.TEST: 6}
    other_seed = {r.subject: r.split for r in assign_splits(records, seed=1)}
    assert other_seed != a


def test_small_datasets_still_get_val_and_test():
    records = [Record(f"s{i}", Path(f"{i}.nii.gz")) for i in range(3)]
    assert sorted(r.split for r in assign_splits(records)) == ["test", "train", "val"]
