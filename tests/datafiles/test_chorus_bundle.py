"""datafiles.bundle_product_zips: a folder of Chorus product zips as one upload, byte-identical
on every call (import_dataset and load_demo both bundle with it)."""

import json
import os
import zipfile

import pytest

from datafiles import DatasetReadError, bundle_product_zips, read_chorus_products
from tests.datafiles.files import CHORUS_RECORDS


def product_zips(folder):
    folder.mkdir()
    paths = []
    for number, records in ((1, CHORUS_RECORDS[:2]), (2, CHORUS_RECORDS[2:])):
        path = folder / f"{number}.json.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
            out.writestr(f"part{number}/", "")  # a folder entry
            out.writestr(f"part{number}/{number}.json", json.dumps(records))
        paths.append(path)
    return paths


def test_the_bundle_holds_every_product_file_and_has_the_same_bytes_every_time(tmp_path):
    zips = product_zips(tmp_path / "chorus")
    first = bundle_product_zips(zips, tmp_path / "first.zip")
    for path in zips:  # the same content, written again later
        os.utime(path, (2_000_000_000, 2_000_000_000))
    second = bundle_product_zips(zips, tmp_path / "second.zip")
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as bundle:
        assert bundle.namelist() == ["part1/1.json", "part2/2.json"]
    ids = [frame["id"].tolist() for frame in read_chorus_products(first)]
    assert ids == [["1", "2"], ["1"]]


def test_an_unreadable_zip_is_named(tmp_path):
    zips = product_zips(tmp_path / "chorus")
    broken = tmp_path / "chorus" / "3.json.zip"
    broken.write_bytes(b"not a zip")
    with pytest.raises(DatasetReadError) as caught:
        bundle_product_zips([*zips, broken], tmp_path / "bundle.zip")
    assert caught.value.message.startswith(f"{broken} is not a readable zip file: ")
