"""import_dataset with a folder of Chorus product zips: bundled into one upload, the same bytes as
load_demo bundles from the same folder, or refused with a message when a zip cannot be read."""

import json
import zipfile
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from governance.models import DatasetVersion
from tests.datafiles.files import CHORUS_RECORDS


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    with override_settings(MEDIA_ROOT=tmp_path / "media"):
        yield


def chorus_folder(tmp_path):
    folder = tmp_path / "chorus"
    folder.mkdir()
    for number, records in ((1, CHORUS_RECORDS[:2]), (2, CHORUS_RECORDS[2:])):
        with zipfile.ZipFile(folder / f"{number}.json.zip", "w", zipfile.ZIP_DEFLATED) as out:
            out.writestr(f"{number}.json", json.dumps(records))
    (folder / "judgments.csv").write_text("query,product_id,grade\ntoner,1,3\n")
    return folder


def import_folder(folder, **options):
    call_command(
        "import_dataset",
        str(folder),
        asset="catalog",
        format="chorus-products",
        no_submit=True,
        stdout=StringIO(),
        **options,
    )


def test_a_chorus_folder_is_bundled_into_the_bytes_that_load_demo_bundles(org, tmp_path):
    """One bundling for both commands: a folder imported here is the version that load_demo
    --data finds stored already (it looks versions up by checksum)."""
    from recsys.demo.dataset import demo_files

    folder = chorus_folder(tmp_path)
    import_folder(folder)
    version = DatasetVersion.objects.get(asset=org.asset)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    catalog = next(f for f in demo_files(str(folder), scratch, say=print) if f.role == "catalog")
    assert version.original_name == catalog.name == "chorus-products.zip"
    assert version.sha256 == catalog.sha256


def test_a_folder_with_an_unreadable_product_zip_is_refused(org, tmp_path):
    folder = chorus_folder(tmp_path)
    (folder / "3.json.zip").write_bytes(b"not a zip")
    with pytest.raises(CommandError, match=r"3\.json\.zip is not a readable zip file"):
        import_folder(folder)
    assert not DatasetVersion.objects.filter(asset=org.asset).exists()
