"""python manage.py load_demo: the demo data as approved versions, a full retrain run by a real
worker (started by the command), its index activated; a second call changes nothing; bad input
fails before anything is stored. The runs use the tiny model and a few training steps."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from django.core.management import CommandError, call_command

from core.models import AuditEvent
from data import demo_generator as gen
from governance.models import (
    ApprovalRequest,
    DatasetVersion,
    Decision,
    Incident,
)
from recsys.demo import DemoLoadError
from recsys.demo.dataset import check_demo_files, demo_files
from recsys.models import ActiveIndex, IndexVersion, ModelVersion, PipelineRun
from teams.services import notifications_deliver_pending
from tests.conftest import wait_for_worker_idle

CHORUS = Path(
    os.environ.get("STEWARD_CHORUS_DIR")
    or Path(__file__).resolve().parents[3] / "shared" / "data" / "chorus-icecat"
)
needs_chorus = pytest.mark.skipif(
    not (CHORUS / "judgments.csv").exists(), reason=f"no chorus-icecat data set at {CHORUS}"
)


def _seed() -> None:
    call_command("seed_demo", quiet_logins=True, i_know_this_is_a_demo=True, stdout=io.StringIO())


def _load(**options) -> str:
    out = io.StringIO()
    call_command("load_demo", stdout=out, **options)
    return out.getvalue()


def _counts() -> dict:
    models = (
        DatasetVersion,
        ApprovalRequest,
        Decision,
        PipelineRun,
        ModelVersion,
        IndexVersion,
        AuditEvent,
    )
    return {model.__name__: model.objects.count() for model in models}


def _loaded_versions(**lookup) -> dict[str, DatasetVersion]:
    """The versions load_demo stored, by asset slug (default: the generated synthetic files)."""
    lookup = lookup or {"original_name__startswith": "synthetic-"}
    return {
        v.asset.slug: v for v in DatasetVersion.objects.select_related("asset").filter(**lookup)
    }


def _generic_layout(folder: Path, catalog: list[dict], *, per_query: int, users: int) -> None:
    """A data folder in the generic layout: Parquet catalog, JSON-lines labels, gzipped events."""
    pd.DataFrame(catalog).to_parquet(folder / "catalog.parquet")
    with (folder / "labels.jsonl").open("w") as out:
        for row in gen.queries_and_labels(catalog, per_query=per_query):
            out.write(json.dumps(row) + "\n")
    events = gen.to_csv(gen.behaviour_events(catalog, users=users)).encode()
    (folder / "events.csv.gz").write_bytes(gzip.compress(events, mtime=0))


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_load_demo_end_to_end_then_a_second_call_changes_nothing(tiny_model_path):
    _seed()

    output = _load(base_model=tiny_model_path, max_steps=2)

    versions = _loaded_versions()
    assert set(versions) == {"product-catalog", "relevance-labels", "behaviour-events"}
    assert {v.status for v in versions.values()} == {"approved"}
    approvers = {
        d.approver.username
        for d in Decision.objects.filter(
            request__kind="dataset_version",
            request__subject_id__in=[v.pk for v in versions.values()],
        )
    }
    assert approvers == {"catalog.steward", "relevance.steward", "behaviour.steward"}
    run = PipelineRun.objects.get(kind="full_retrain")
    assert run.state == "succeeded", run.log
    assert run.requested_by.username == "ops.ops"
    assert set(run.inputs.all()) == set(versions.values())
    assert run.parameters["max_steps"] == 2
    run_approvers = set(
        Decision.objects.filter(
            request__kind="pipeline_run", request__subject_id=run.pk
        ).values_list("approver__username", flat=True)
    )
    assert run_approvers == {
        "catalog.steward",
        "relevance.steward",
        "behaviour.steward",
        "ops.steward",
    }
    index = IndexVersion.objects.get(run=run)
    assert index.status == "active"
    assert ActiveIndex.objects.get(pipeline=run.pipeline).index == index
    activation = ApprovalRequest.objects.get(kind="index_activation", subject_id=index.pk)
    assert activation.state == "approved"
    assert activation.decisions.get().approver.username == "ops.lead"
    assert AuditEvent.objects.filter(verb="index.activated", actor__username="ops.ops").exists()
    # The generated catalog lacks 6% of its EANs: approving it opened the incident that the
    # catalog's steward meets on the SLA dashboard (the volume incident of v1 is resolved).
    open_incidents = Incident.objects.filter(asset__slug="product-catalog", status="open")
    assert [(i.rule, i.assigned_to.username) for i in open_incidents] == [
        ("null_rate", "catalog.steward")
    ]
    assert "ean" in open_incidents.get().summary
    assert "Product catalog v4: profiled, 3,030 rows, SLA breached" in output
    for line in ("1/4", "2/4", "3/4", "4/4", f"run #{run.pk}: running", "Demo ready"):
        assert line in output
    assert "worker: " in output  # one started for the load, or one that answers

    wait_for_worker_idle()  # a worker that answered may still profile the cleaned catalog
    # The e-mail copies of the first call's notifications go out through the worker whenever it
    # gets to them; sent here (the worker's copy is then a no-op) so they are not counted as a
    # change made by the second call.
    notifications_deliver_pending(older_than_seconds=0)
    before = _counts()
    again = _load(base_model=tiny_model_path, max_steps=2)

    assert _counts() == before
    assert "Nothing to do" in again and "worker" not in again
    assert f"{index} was built from these demo versions" in again
    assert f"serves {index} (" in again

    # Ops have since served another index (e.g. rolled back): the demo is still loaded, and
    # the command says which index is served now instead of claiming the demo's.
    other = IndexVersion.objects.get(pk=index.pk)
    other.pk, other.status, other.activated_at = None, "active", None
    other.save()
    IndexVersion.objects.filter(pk=index.pk).update(status="retired")
    ActiveIndex.objects.filter(pipeline=run.pipeline).update(index=other)
    later = _load(base_model=tiny_model_path, max_steps=2)
    assert f"{index} was built from these demo versions" in later
    assert f"{other} is served now" in later and f"serves {other} (" in later


@pytest.mark.django_db
def test_bad_input_fails_with_a_clear_message_before_anything_is_stored(tmp_path):
    _seed()
    before = _counts()

    with pytest.raises(CommandError, match="no such file or folder"):
        _load(data=str(tmp_path / "missing"))
    only_labels = tmp_path / "only-labels"
    only_labels.mkdir()
    (only_labels / "labels.csv").write_text("query,product_id,grade\nphone,P1,3\n")
    with pytest.raises(CommandError, match="has no catalog file"):
        _load(data=str(only_labels))
    no_title = tmp_path / "no-title"
    no_title.mkdir()
    (no_title / "catalog.csv").write_text("id,name\nP1,Phone\n")
    (no_title / "labels.csv").write_text("query,product_id,grade\nphone,P1,3\n")
    with pytest.raises(CommandError, match=r"catalog\.csv lacks the column\(s\) title"):
        _load(data=str(no_title))
    (no_title / "catalog.csv").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    with pytest.raises(CommandError, match=r"catalog\.csv"):
        _load(data=str(no_title))
    with pytest.raises(CommandError, match="no such model folder"):
        _load(base_model=str(tmp_path / "no-model"))

    assert _counts() == before


def test_the_demo_command_needs_the_demo_organization(db):
    with pytest.raises(CommandError, match=r"run `python manage\.py seed_demo` first"):
        _load()


def test_generated_data_is_deterministic(tmp_path):
    first = demo_files(None, tmp_path, say=lambda line: None)
    second = demo_files(None, tmp_path, say=lambda line: None)

    assert [(f.role, f.fmt, f.sha256) for f in first] == [(f.role, f.fmt, f.sha256) for f in second]
    assert [f.role for f in first] == ["catalog", "labels", "events"]
    assert gen.SYNTHETIC_NOTE in first[0].path.read_text()


def test_the_generated_catalog_is_messy_and_filterable(tmp_path):
    """What the cleaning job and the console find in it: planted duplicates, HTML, outliers,
    blank descriptions and EANs, and category-specific attributes the index offers as filters."""
    import pandas as pd

    from recsys.pipelines.products import attribute_names, product_table

    catalog_file = demo_files(None, tmp_path, say=lambda line: None)[0].path
    catalog = pd.read_csv(catalog_file, dtype=str, keep_default_na=False)
    assert len(catalog) == 3030 and catalog["id"].str.endswith("-DUP").sum() == 30
    assert catalog["title"].str.contains("&amp;").sum() == 60
    blank = catalog["description"].eq("")
    assert 75 <= blank.sum() <= 80  # 75 blanked, some of them copied by the duplicates
    assert catalog["ean"].eq("").mean() == pytest.approx(0.06, abs=0.001)  # over the SLA's 5%
    assert catalog.loc[~blank, "description"].str.contains("SYNTHETIC demo data").all()
    names = attribute_names(product_table(catalog, catalog["id"].tolist()))
    assert set(names) >= {"category", "colour", "connectivity", "screen_size", "storage", "gps"}


def test_generic_layout_accepts_csv_jsonl_and_parquet(tmp_path):
    _generic_layout(tmp_path, gen.catalog_rows(30, seed=1), per_query=3, users=5)
    (tmp_path / "README.txt").write_text("not data")

    files = demo_files(str(tmp_path), tmp_path / "scratch", say=lambda line: None)

    assert [(f.role, f.fmt) for f in files] == [
        ("catalog", "parquet"),
        ("labels", "jsonl"),
        ("events", "csv"),
    ]
    check_demo_files(files)  # readable, with the columns the pipeline needs


def test_several_files_for_one_role_are_refused(tmp_path):
    (tmp_path / "catalog.csv").write_text("id,title\nP1,Phone\n")
    (tmp_path / "catalog.jsonl").write_text('{"id": "P1", "title": "Phone"}\n')
    (tmp_path / "labels.csv").write_text("query,product_id,grade\nphone,P1,3\n")

    with pytest.raises(DemoLoadError, match="several catalog files"):
        demo_files(str(tmp_path), tmp_path, say=lambda line: None)


def _chorus_slice(target: Path, *, queries: int = 8, extra: int = 150) -> Path:
    """A small folder in the chorus-icecat layout: the products judged for the first
    `queries` queries plus `extra` others, and their judgments."""
    with (CHORUS / "judgments.csv").open(newline="") as handle:
        judgments = list(csv.DictReader(handle))
    kept_queries = list(dict.fromkeys(row["query"] for row in judgments))[:queries]
    kept = [row for row in judgments if row["query"] in kept_queries]
    wanted = {row["product_id"] for row in kept}
    products, others = [], []
    for member_zip in sorted(CHORUS.glob("*.json.zip")):
        with zipfile.ZipFile(member_zip) as archive:
            for name in archive.namelist():
                for record in json.loads(archive.read(name)):
                    if str(record["id"]) in wanted:
                        products.append(record)
                    elif len(others) < extra:
                        others.append(record)
    target.mkdir(parents=True)
    with zipfile.ZipFile(target / "1.json.zip", "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("1.json", json.dumps(products + others))
    with (target / "judgments.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["query", "product_id", "grade"])
        writer.writeheader()
        writer.writerows(kept)
    return target


@needs_chorus
def test_chorus_layout_is_recognised_and_bundled_reproducibly(tmp_path):
    folder = _chorus_slice(tmp_path / "chorus", queries=3, extra=20)

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = demo_files(str(folder), tmp_path / "a", say=lambda line: None)
    second = demo_files(str(folder), tmp_path / "b", say=lambda line: None)

    assert [(f.role, f.fmt) for f in first] == [
        ("catalog", "chorus-products"),
        ("labels", "chorus-judgments"),
    ]
    assert [f.sha256 for f in first] == [f.sha256 for f in second]
    check_demo_files(first)


@needs_chorus
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_load_demo_with_a_chorus_slice(tmp_path, tiny_model_path):
    folder = _chorus_slice(tmp_path / "chorus")
    _seed()

    _load(data=str(folder), base_model=tiny_model_path, max_steps=2)

    catalog = DatasetVersion.objects.get(asset__slug="product-catalog", format="chorus-products")
    labels = DatasetVersion.objects.get(asset__slug="relevance-labels", format="chorus-judgments")
    assert catalog.status == labels.status == "approved"
    run = PipelineRun.objects.get(kind="full_retrain")
    assert run.state == "succeeded", run.log
    assert set(run.inputs.all()) == {catalog, labels}
    index = IndexVersion.objects.get(run=run)
    assert index.status == "active" and index.catalog_version == catalog


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_load_demo_with_the_generic_layout(tmp_path, tiny_model_path):
    """DEMO_DATA in the generic layout (docs/demo-data.md): a Parquet catalog, JSON-lines labels
    and gzipped CSV events, imported, approved, trained on and served like the synthetic set."""
    folder = tmp_path / "shop"
    folder.mkdir()
    _generic_layout(folder, gen.catalog_rows(240, seed=5, attributes=True), per_query=6, users=20)
    _seed()

    output = _load(data=str(folder), base_model=tiny_model_path, max_steps=2)

    versions = _loaded_versions(
        original_name__in=["catalog.parquet", "labels.jsonl", "events.csv.gz"]
    )
    assert {slug: v.format for slug, v in versions.items()} == {
        "product-catalog": "parquet",
        "relevance-labels": "jsonl",
        "behaviour-events": "csv",
    }
    assert {v.status for v in versions.values()} == {"approved"}
    run = PipelineRun.objects.get(kind="full_retrain")
    assert run.state == "succeeded", run.log
    assert set(run.inputs.all()) == set(versions.values())
    index = IndexVersion.objects.get(run=run)
    assert index.status == "active" and index.catalog_version == versions["product-catalog"]
    assert "catalog.parquet" in output and "Demo ready" in output
