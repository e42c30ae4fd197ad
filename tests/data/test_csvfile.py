"""The one CSV reader of user files (usbrain.data.csvfile)."""

from __future__ import annotations

import pytest

from usbrain.data.csvfile import read_rows
from usbrain.errors import InputError


def test_cells_are_stripped_paths_taken_from_the_files_folder(tmp_path):
    (tmp_path / "m.csv").write_text("image, mask ,id\n a/x.nii.gz ,/abs/m.nii.gz,\n")
    (row,) = read_rows(tmp_path / "m.csv", ("image",))
    assert row.line == 2 and row.cells == {
        "image": "a/x.nii.gz",
        " mask ": "/abs/m.nii.gz",
        "id": "",
    }
    assert row.file("image") == tmp_path / "a" / "x.nii.gz"
    assert row.file("id") is None and row.file("absent") is None and row.get("absent") == ""


def test_an_absolute_path_stays_absolute(tmp_path):
    (tmp_path / "m.csv").write_text("mask\n/data/m.nii.gz\n")
    assert str(read_rows(tmp_path / "m.csv")[0].file("mask")) == "/data/m.nii.gz"


@pytest.mark.parametrize(
    ("text", "required", "message"),
    [
        (None, (), r"m\.csv: lesion list not found"),
        (
            "image\nx\n",
            ("mask", "id"),
            r"lesion list has no 'mask', 'id' column \(columns: image\)",
        ),
    ],
)
def test_a_missing_file_or_column_is_named(tmp_path, text, required, message):
    if text is not None:
        (tmp_path / "m.csv").write_text(text)
    with pytest.raises(InputError, match=message):
        read_rows(tmp_path / "m.csv", required, "lesion list")


def test_an_empty_required_cell_names_its_line(tmp_path):
    (tmp_path / "m.csv").write_text('image\nx.nii.gz\n""\n')
    rows = read_rows(tmp_path / "m.csv", ("image",))
    with pytest.raises(InputError, match=r"m\.csv: line 3 has an empty 'image' cell"):
        [r.file("image", required=True) for r in rows]
