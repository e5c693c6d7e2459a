"""Dataset versions: stored before anything else, profiled by a job, submitted for approval, then
immutable. Every bad upload is checked through the service, the UI form and the API: refused
ones (400, nothing stored) and stored-but-failed ones (the file kept as received, the version
showing why profiling failed)."""

from __future__ import annotations

import gzip
import hashlib
import html
import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.utils import timezone

from core.errors import (
    ApplicationError,
    InvalidTransitionError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from core.models import AuditEvent
from governance import services
from governance.choices import ApprovalState, ProfileStatus, VersionStatus
from governance.models import ApprovalRequest, DatasetVersion
from governance.services.versions import dataset_versions_profile_sweep
from governance.tasks import dataset_version_profile_task
from tests.conftest import api_as, login
from tests.helpers import audit_since, last_audit_id

pytestmark = pytest.mark.django_db

CSV = b"id,title,price\n1,Red shoe,10.5\n2,Blue shoe,12.0\n3,Green hat,7.25\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 2
INVALID_UTF8 = b"id,title\n1,caf\xe9 cr\xe8me\n2,plain\n"
MALFORMED = (
    b"id,title,price\n"
    b"1,a,1.5\n"
    b"2,b,extra,9\n"  # line 3: one field too many
    b"3,c,2\n"
    b"4\n"  # line 5: too few
    b'5,"two\nlines",3\n'  # lines 6-7: one good record
    b"6,f,4,5\n"  # line 8
)
TRUNCATED_GZIP = gzip.compress(
    b"id,title\n" + b"".join(b"%d,title %d\n" % (i, i) for i in range(5000))
)
TRUNCATED_GZIP = TRUNCATED_GZIP[: len(TRUNCATED_GZIP) // 2]
ALL_ROWS_MALFORMED = b"id,title\n1,a,b\n2\n"

UI_URL = "/governance/assets/catalog/upload/"
API_URL = "/api/v1/assets/catalog/versions/"
CHANNELS = ["service", "ui", "api"]


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    """Uploads under tmp_path; cheap password hashing for the users of build_org()."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    root = tmp_path / "media"
    with override_settings(MEDIA_ROOT=root):
        yield root


# --- helpers -----------------------------------------------------------------------------------


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stored_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def request_of(version) -> ApprovalRequest | None:
    return ApprovalRequest.objects.filter(
        subject_type=ContentType.objects.get_for_model(DatasetVersion), subject_id=version.pk
    ).first()


def version_verbs(version) -> list[str]:
    return list(
        AuditEvent.objects.filter(
            target_type=ContentType.objects.get_for_model(DatasetVersion),
            target_id=str(version.pk),
        )
        .order_by("id")
        .values_list("verb", flat=True)
    )


def raw_multipart(filename: str, content: bytes) -> tuple[bytes, str]:
    """A multipart body with the file name exactly as given (the test client would strip it)."""
    boundary = "StewardTestBoundary"
    body = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode() + content
    body += (
        f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="submit"\r\n\r\non'
        f"\r\n--{boundary}--\r\n"
    ).encode()
    return body, f"multipart/form-data; boundary={boundary}"


class Sent:
    """The outcome of one upload through one channel."""

    def __init__(self, status: int, text: str, version: DatasetVersion | None):
        self.status, self.text, self.version = status, text, version


def send(
    channel: str, org, client, name: str, content: bytes, *, actor="alpha.engineer", fmt: str = ""
) -> Sent:
    """Upload `content` as `name` through the service, the UI form or the API."""
    user = org.user(actor)
    if channel == "service":
        try:
            version = services.dataset_version_upload(
                actor=user,
                asset=org.asset,
                file=SimpleUploadedFile(name, content),
                name=name,
                fmt=fmt or None,
            )
        except ApplicationError as exc:
            return Sent(exc.status_code, exc.message, None)
        return Sent(201, "", version)
    upload = SimpleUploadedFile(name, content)
    if channel == "ui":
        login(client, user)
        response = client.post(UI_URL, {"file": upload, "format": fmt, "note": "", "submit": "on"})
        text = html.unescape(response.content.decode())
        if response.status_code == 302:
            version = DatasetVersion.objects.order_by("-id").first()
            assert response["Location"] == f"/governance/versions/{version.pk}/"
            return Sent(201, text, version)
        return Sent(response.status_code, text, None)
    response = api_as(user).post(API_URL, {"file": upload, "format": fmt}, format="multipart")
    text = response.content.decode()
    if response.status_code == 201:
        return Sent(201, text, DatasetVersion.objects.get(pk=response.json()["id"]))
    return Sent(response.status_code, f"{response.json()['detail']} {text}", None)


def assert_nothing_stored(media: Path) -> None:
    assert not DatasetVersion.objects.exists()
    assert not AuditEvent.objects.filter(verb__startswith="datasetversion.").exists()
    assert stored_files(media) == []


def assert_stored_as_received(media: Path, version: DatasetVersion, name: str, content: bytes):
    version.refresh_from_db()
    path = Path(default_storage.path(version.file.name))
    assert path.is_file()
    assert media in path.parents
    assert path.parent.parent == media / "datasets" / "catalog"
    assert path.name == name == version.original_name
    assert path.read_bytes() == content
    assert version.sha256 == sha256(content) == sha256(path.read_bytes())
    assert version.size_bytes == len(content)
    return path


def shows_failure(channel: str, org, client, version: DatasetVersion, words: list[str]) -> None:
    """The version's page (UI) / resource (API) shows that profiling failed and why."""
    if channel == "ui":
        response = client.get(f"/governance/versions/{version.pk}/")
        assert response.status_code == 200
        text = html.unescape(response.content.decode())
        assert "Profiling failed:" in text
        assert version.sha256[:12] in text
    elif channel == "api":
        response = api_as(org.user("alpha.engineer")).get(f"/api/v1/versions/{version.pk}/")
        assert response.status_code == 200
        body = response.json()
        assert body["profile_status"] == ProfileStatus.FAILED
        assert body["status"] == VersionStatus.DRAFT
        text = body["profile_error"]
    else:
        text = version.profile_error
    for word in words:
        assert word in text, text


# --- the happy path ----------------------------------------------------------------------------


def test_upload_stores_a_draft_and_enqueues_profiling_after_commit(
    org, media, monkeypatch, django_capture_on_commit_callbacks
):
    enqueued = []
    monkeypatch.setattr(dataset_version_profile_task, "delay", enqueued.append)
    with django_capture_on_commit_callbacks(execute=True):
        version = services.dataset_version_upload(
            actor=org.user("alpha.engineer"),
            asset=org.asset,
            file=SimpleUploadedFile("catalog.csv", CSV),
            name="catalog.csv",
            note=" weekly ",
        )
        assert enqueued == []  # not before commit
    assert enqueued == [version.pk]
    assert (version.number, version.status, version.profile_status) == (
        1,
        VersionStatus.DRAFT,
        ProfileStatus.PENDING,
    )
    assert (version.format, version.note, version.submit_when_profiled) == ("csv", "weekly", True)
    assert version.uploaded_by == org.user("alpha.engineer")
    assert_stored_as_received(media, version, "catalog.csv", CSV)
    assert version_verbs(version) == ["datasetversion.uploaded"]
    assert request_of(version) is None


def test_the_profiling_sweep_resends_after_a_broker_outage_without_failing(
    org, monkeypatch, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):  # the upload's own send was lost
        version = services.dataset_version_upload(
            actor=org.user("alpha.engineer"),
            asset=org.asset,
            file=SimpleUploadedFile("catalog.csv", CSV),
            name="catalog.csv",
        )
    DatasetVersion.objects.filter(pk=version.pk).update(
        created_at=timezone.now() - timedelta(minutes=10)
    )

    def broker_down(*args):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(dataset_version_profile_task, "delay", broker_down)
    assert dataset_versions_profile_sweep() == {"requeued": 1, "failed": 0}
    sent = []
    monkeypatch.setattr(dataset_version_profile_task, "delay", sent.append)
    dataset_versions_profile_sweep()
    assert sent == [version.pk]


def test_profile_then_submit_opens_the_approval(org, media):
    version = services.dataset_version_upload(
        actor=org.user("alpha.engineer"),
        asset=org.asset,
        file=SimpleUploadedFile("catalog.csv", CSV),
        name="catalog.csv",
        note="weekly",
    )
    version = services.dataset_version_profile(version_id=version.pk)
    version.refresh_from_db()
    assert version.profile_status == ProfileStatus.SUCCEEDED and version.profile_error == ""
    assert version.row_count == 3 and version.profiled_at is not None
    assert [c["name"] for c in version.profile["columns"]] == ["id", "title", "price"]
    assert version.status == VersionStatus.SUBMITTED and version.submitted_at is not None
    request = request_of(version)
    assert request.state == ApprovalState.PENDING and request.reason == "weekly"
    assert version_verbs(version) == [
        "datasetversion.uploaded",
        "datasetversion.profiled",
        "datasetversion.submitted",
    ]

    # A redelivered profiling job is a no-op.
    audit_before = last_audit_id()
    profiled_at = version.profiled_at
    services.dataset_version_profile(version_id=version.pk)
    version.refresh_from_db()
    assert version.profiled_at == profiled_at
    assert audit_since(audit_before) == []
    assert ApprovalRequest.objects.count() == 1
    # A missing version is a no-op too.
    assert services.dataset_version_profile(version_id=version.pk + 1000) is None


def test_numbers_increase_per_asset(org):
    numbers = [
        services.dataset_version_upload(
            actor=org.user("alpha.engineer"),
            asset=org.asset,
            file=SimpleUploadedFile("catalog.csv", CSV),
            name="catalog.csv",
        ).number
        for _ in range(3)
    ]
    assert numbers == [1, 2, 3]


def test_without_submit_the_version_stays_a_draft_until_submitted(org):
    version = services.dataset_version_upload(
        actor=org.user("alpha.engineer"),
        asset=org.asset,
        file=SimpleUploadedFile("catalog.csv", CSV),
        name="catalog.csv",
        submit=False,
    )
    services.dataset_version_profile(version_id=version.pk)
    version.refresh_from_db()
    assert version.profile_status == ProfileStatus.SUCCEEDED
    assert version.status == VersionStatus.DRAFT and request_of(version) is None

    services.dataset_version_submit(
        actor=org.user("alpha.engineer"), version=version, reason="ready"
    )
    version.refresh_from_db()
    assert version.status == VersionStatus.SUBMITTED
    assert request_of(version).reason == "ready"


@pytest.mark.parametrize("channel", ["ui", "api"])
def test_good_upload_through_http(org, client, media, channel):
    sent = send(channel, org, client, "catalog.csv", CSV)
    assert sent.status == 201, sent.text
    assert_stored_as_received(media, sent.version, "catalog.csv", CSV)
    if channel == "api":
        body = json.loads(sent.text)
        assert body["sha256"] == sha256(CSV) and body["size_bytes"] == len(CSV)
        assert body["status"] == VersionStatus.DRAFT
        assert body["profile_status"] == ProfileStatus.PENDING
    services.dataset_version_profile(version_id=sent.version.pk)
    sent.version.refresh_from_db()
    assert sent.version.status == VersionStatus.SUBMITTED


# --- who may upload ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "error", "words"),
    [
        ("alpha.viewer", PermissionDeniedError, ["only engineers, stewards and leads of Alpha"]),
        ("alpha.ops", PermissionDeniedError, ["only engineers, stewards and leads of Alpha"]),
        ("beta.steward", PermissionDeniedError, ["cannot upload versions of Catalog"]),
        ("outsider", NotFoundError, ["not found"]),
    ],
)
def test_upload_needs_upload_permission_on_the_owning_team(org, media, who, error, words):
    with pytest.raises(error) as info:
        services.dataset_version_upload(
            actor=org.user(who),
            asset=org.asset,
            file=SimpleUploadedFile("catalog.csv", CSV),
            name="catalog.csv",
        )
    assert type(info.value) is error
    for word in words:
        assert word in info.value.message
    assert_nothing_stored(media)


# --- refused uploads: 400, nothing stored ------------------------------------------------------


REFUSED = [
    pytest.param("catalog.csv", b"", ["empty"], id="empty"),
    pytest.param(
        "catalog.xlsx", CSV, ["catalog.xlsx", "supported file type"], id="wrong-extension"
    ),
    pytest.param("catalog.exe", CSV, ["supported file type"], id="executable-extension"),
    pytest.param("catalog", CSV, ["supported file type"], id="no-extension"),
]


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize(("name", "content", "words"), REFUSED)
def test_refused_upload_stores_nothing(
    org, client, media, channel, name, content, words, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        sent = send(channel, org, client, name, content)
    assert sent.status == 400, sent.text
    for word in words:
        assert word in sent.text, sent.text
    assert callbacks == []
    assert_nothing_stored(media)


@pytest.mark.parametrize("channel", CHANNELS)
def test_unknown_format_is_refused(org, client, media, channel):
    if channel == "service":
        sent = send(channel, org, client, "catalog.csv", CSV, fmt="xml")
        assert sent.status == 400 and "Unknown format 'xml'" in sent.text
    else:  # the form and the serializer only offer the known formats
        sent = send(channel, org, client, "catalog.csv", CSV, fmt="xml")
        assert sent.status == 400
        assert "xml" in sent.text
    assert_nothing_stored(media)


@pytest.mark.parametrize("channel", CHANNELS)
def test_over_the_size_limit_is_refused(org, client, media, channel):
    content = b"id,title\n" + b"".join(b"%d,title number %d\n" % (i, i) for i in range(20))
    assert len(content) > 100
    with override_settings(STEWARD_MAX_UPLOAD_BYTES=100):
        sent = send(channel, org, client, "catalog.csv", content)
    if channel == "service":
        assert sent.status == 400, sent.text
        assert "over the limit of 100 bytes" in sent.text
        assert f"{len(content):,} bytes" in sent.text
    else:  # stopped while the body streams in (tests/governance/test_upload_limit.py)
        assert sent.status == 413, sent.text
        assert "The upload is larger than the limit of 100 bytes" in sent.text
    assert_nothing_stored(media)


def test_exactly_at_the_size_limit_is_accepted(org, media):
    content = CSV.ljust(100, b"\n")
    with override_settings(STEWARD_MAX_UPLOAD_BYTES=100):
        version = services.dataset_version_upload(
            actor=org.user("alpha.engineer"),
            asset=org.asset,
            file=SimpleUploadedFile("catalog.csv", content),
            name="catalog.csv",
        )
    assert version.size_bytes == 100


@pytest.mark.parametrize("name", ["../x.csv", "a/b.csv", "..\\x.csv", "/etc/x.csv", "..", "."])
def test_service_refuses_names_with_path_components(org, media, name):
    with pytest.raises(ValidationError) as info:
        services.dataset_version_upload(
            actor=org.user("alpha.engineer"),
            asset=org.asset,
            file=SimpleUploadedFile("x.csv", CSV),
            name=name,
        )
    assert type(info.value) is ValidationError and info.value.field == "file"
    assert "path components" in info.value.message
    assert "plain name" in info.value.message
    assert_nothing_stored(media)
    assert not (media.parent / "x.csv").exists()


@pytest.mark.parametrize("channel", ["ui", "api"])
@pytest.mark.parametrize(("name", "plain"), [("../x.csv", "x.csv"), ("a/b.csv", "b.csv")])
def test_http_uploads_never_store_outside_the_version_folder(
    org, client, media, channel, name, plain
):
    """Django's multipart parser keeps only the base name of an uploaded file, so a path in
    the file name never reaches the service: the file lands in its version's folder."""
    body, content_type = raw_multipart(name, CSV)
    if channel == "ui":
        login(client, org.user("alpha.engineer"))
        response = client.post(UI_URL, data=body, content_type=content_type)
        assert response.status_code == 302, response.content
    else:
        response = api_as(org.user("alpha.engineer")).post(
            API_URL, data=body, content_type=content_type
        )
        assert response.status_code == 201, response.content
    version = DatasetVersion.objects.get()
    assert version.original_name == plain
    path = assert_stored_as_received(media, version, plain, CSV)
    assert stored_files(media) == [path]
    assert not (media.parent / "x.csv").exists()


@pytest.mark.parametrize("channel", ["ui", "api"])
def test_http_upload_named_dot_dot_is_refused(org, client, media, channel):
    body, content_type = raw_multipart("..", CSV)
    if channel == "ui":
        login(client, org.user("alpha.engineer"))
        response = client.post(UI_URL, data=body, content_type=content_type)
    else:
        response = api_as(org.user("alpha.engineer")).post(
            API_URL, data=body, content_type=content_type
        )
    assert response.status_code == 400
    assert_nothing_stored(media)


# --- stored, then profiling fails with a reason ------------------------------------------------


STORED_BUT_FAILED = [
    pytest.param("catalog.csv", PNG, ["PNG image"], id="png-named-csv"),
    pytest.param(
        "catalog.csv",
        b"id,title,price\n",
        ["header (id, title, price) but no data rows"],
        id="header-only",
    ),
    pytest.param(
        "catalog.csv.gz",
        TRUNCATED_GZIP,
        ["truncated", "upload the complete file"],
        id="truncated-gzip",
    ),
    pytest.param(
        "catalog.csv",
        ALL_ROWS_MALFORMED,
        ["None of the 2 data rows", "line 2", "expected 2 fields"],
        id="all-malformed",
    ),
    pytest.param("catalog.csv", b"\n\n   \n", ["no data rows"], id="blank"),
]


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize(("name", "content", "words"), STORED_BUT_FAILED)
def test_stored_file_whose_profiling_fails_keeps_file_and_reason(
    org, client, media, channel, name, content, words
):
    sent = send(channel, org, client, name, content)
    assert sent.status == 201, sent.text
    version = sent.version
    assert_stored_as_received(media, version, name, content)
    assert version.profile_status == ProfileStatus.PENDING

    services.dataset_version_profile(version_id=version.pk)
    version.refresh_from_db()
    assert version.profile_status == ProfileStatus.FAILED
    assert version.profile is None and version.row_count is None
    assert version.profiled_at is not None
    for word in words:
        assert word in version.profile_error, version.profile_error
    # Not submitted: there is nothing to approve.
    assert version.status == VersionStatus.DRAFT and request_of(version) is None
    assert version_verbs(version) == ["datasetversion.uploaded", "datasetversion.profile_failed"]
    event = AuditEvent.objects.get(verb="datasetversion.profile_failed")
    assert event.after == {"error": version.profile_error}
    # The file is still there, byte for byte.
    assert_stored_as_received(media, version, name, content)
    shows_failure(channel, org, client, version, words)

    # A failed version cannot be submitted; the error says why.
    with pytest.raises(ValidationError) as info:
        services.dataset_version_submit(actor=org.user("alpha.engineer"), version=version)
    assert type(info.value) is ValidationError
    assert "profiling failed" in info.value.message and words[0] in info.value.message
    version.refresh_from_db()
    assert version.status == VersionStatus.DRAFT


# --- stored and profiled, with the problems reported -------------------------------------------


@pytest.mark.parametrize("channel", CHANNELS)
def test_invalid_utf8_is_profiled_with_the_replaced_count(org, client, media, channel):
    sent = send(channel, org, client, "catalog.csv", INVALID_UTF8)
    assert sent.status == 201, sent.text
    services.dataset_version_profile(version_id=sent.version.pk)
    version = DatasetVersion.objects.get(pk=sent.version.pk)
    assert version.profile_status == ProfileStatus.SUCCEEDED
    assert version.row_count == 2
    assert version.profile["encoding"] == {"encoding": "utf-8", "replaced_characters": 2}
    assert version.status == VersionStatus.SUBMITTED
    assert_stored_as_received(media, version, "catalog.csv", INVALID_UTF8)
    if channel == "ui":
        page = client.get(f"/governance/versions/{version.pk}/").content.decode()
        assert "2 undecodable characters replaced" in page


@pytest.mark.parametrize("channel", CHANNELS)
def test_malformed_rows_are_skipped_with_their_line_numbers(org, client, media, channel):
    sent = send(channel, org, client, "catalog.csv", MALFORMED)
    assert sent.status == 201, sent.text
    services.dataset_version_profile(version_id=sent.version.pk)
    version = DatasetVersion.objects.get(pk=sent.version.pk)
    assert version.profile_status == ProfileStatus.SUCCEEDED
    assert version.row_count == 3
    malformed = version.profile["malformed_rows"]
    assert malformed["count"] == 3
    assert [e["line"] for e in malformed["examples"]] == [3, 5, 8]
    assert "found 4" in malformed["examples"][0]["error"]
    assert "found 1" in malformed["examples"][1]["error"]
    if channel == "ui":
        page = html.unescape(client.get(f"/governance/versions/{version.pk}/").content.decode())
        assert "3 malformed rows skipped" in page
        assert "line 3 (expected 3 fields as in the header, found 4)" in page
    if channel == "api":
        body = api_as(org.user("alpha.viewer")).get(f"/api/v1/versions/{version.pk}/").json()
        assert [e["line"] for e in body["profile"]["malformed_rows"]["examples"]] == [3, 5, 8]


@pytest.mark.parametrize("channel", CHANNELS)
def test_missing_contract_columns_are_reported(org, client, media, channel):
    services.dataasset_update(
        actor=org.user("alpha.steward"),
        asset=org.asset,
        schema_contract={
            "columns": {"id": "integer", "title": "string", "price": "float"},
            "key": "id",
        },
    )
    content = b"id,title\n1,a\n2,b\n2,c\n"
    sent = send(channel, org, client, "catalog.csv", content)
    assert sent.status == 201, sent.text
    services.dataset_version_profile(version_id=sent.version.pk)
    version = DatasetVersion.objects.get(pk=sent.version.pk)
    assert version.profile_status == ProfileStatus.SUCCEEDED
    schema = version.profile["schema"]
    assert (schema["ok"], schema["missing"]) == (False, ["price"])
    assert version.profile["key"]["duplicates"] == 1
    assert version.sla_results["ok"] is False
    schema_check = next(c for c in version.sla_results["checks"] if c["rule"] == "schema")
    assert schema_check == {
        "rule": "schema",
        "ok": False,
        "detail": "missing columns: price",
        "value": None,
        "threshold": None,
    }
    # The stewards see the failed check when they decide.
    assert version.status == VersionStatus.SUBMITTED
    if channel == "ui":
        page = client.get(f"/governance/versions/{version.pk}/").content.decode()
        assert "does not match" in page and "missing: price" in page


def test_contract_must_be_valid(org):
    with pytest.raises(ValidationError) as info:
        services.dataasset_update(
            actor=org.user("alpha.steward"),
            asset=org.asset,
            schema_contract={"columns": {"id": "uuid"}},
        )
    assert "Schema contract" in info.value.message and "'uuid'" in info.value.message
    org.asset.refresh_from_db()
    assert org.asset.schema_contract == {}


def test_a_file_altered_on_disk_fails_profiling(org, media):
    version = services.dataset_version_upload(
        actor=org.user("alpha.engineer"),
        asset=org.asset,
        file=SimpleUploadedFile("catalog.csv", CSV),
        name="catalog.csv",
    )
    Path(default_storage.path(version.file.name)).write_bytes(CSV + b"4,Extra,1\n")
    services.dataset_version_profile(version_id=version.pk)
    version.refresh_from_db()
    assert version.profile_status == ProfileStatus.FAILED
    assert "no longer matches its checksum" in version.profile_error
    assert version.status == VersionStatus.DRAFT


def test_a_missing_stored_file_fails_profiling(org, media):
    version = services.dataset_version_upload(
        actor=org.user("alpha.engineer"),
        asset=org.asset,
        file=SimpleUploadedFile("catalog.csv", CSV),
        name="catalog.csv",
    )
    Path(default_storage.path(version.file.name)).unlink()
    services.dataset_version_profile(version_id=version.pk)
    version.refresh_from_db()
    assert version.profile_status == ProfileStatus.FAILED
    assert version.profile_error == "The stored file is missing."


# --- immutability and deprecation --------------------------------------------------------------


def uploaded(org, content: bytes = CSV, *, submit: bool = True) -> DatasetVersion:
    version = services.dataset_version_upload(
        actor=org.user("alpha.engineer"),
        asset=org.asset,
        file=SimpleUploadedFile("catalog.csv", content),
        name="catalog.csv",
        submit=submit,
    )
    return services.dataset_version_profile(version_id=version.pk)


def approved(org, content: bytes = CSV) -> DatasetVersion:
    version = uploaded(org, content)
    services.approval_decide(
        actor=org.user("alpha.steward"), request=request_of(version), verdict="approve"
    )
    version.refresh_from_db()
    assert version.status == VersionStatus.APPROVED
    return version


def frozen(version) -> tuple:
    version = DatasetVersion.objects.get(pk=version.pk)
    return (
        version.status,
        version.submitted_at,
        version.decided_at,
        version.sha256,
        ApprovalRequest.objects.count(),
        AuditEvent.objects.count(),
    )


def test_a_submitted_version_cannot_be_submitted_again(org):
    version = uploaded(org)
    before = frozen(version)
    with pytest.raises(InvalidTransitionError) as info:
        services.dataset_version_submit(actor=org.user("alpha.engineer"), version=version)
    assert "submitted" in info.value.message and "cannot become submitted" in info.value.message
    assert frozen(version) == before


def test_an_approved_version_cannot_be_submitted_again(org):
    version = approved(org)
    before = frozen(version)
    with pytest.raises(InvalidTransitionError, match="approved: it cannot become submitted"):
        services.dataset_version_submit(actor=org.user("alpha.steward"), version=version)
    assert frozen(version) == before


def test_a_version_waiting_for_its_profile_cannot_be_submitted(org):
    version = services.dataset_version_upload(
        actor=org.user("alpha.engineer"),
        asset=org.asset,
        file=SimpleUploadedFile("catalog.csv", CSV),
        name="catalog.csv",
        submit=False,
    )
    with pytest.raises(ValidationError, match="profile is not ready yet"):
        services.dataset_version_submit(actor=org.user("alpha.engineer"), version=version)
    assert DatasetVersion.objects.get(pk=version.pk).status == VersionStatus.DRAFT


@pytest.mark.parametrize(
    ("who", "error"),
    [
        ("alpha.viewer", PermissionDeniedError),
        ("beta.steward", PermissionDeniedError),
        ("outsider", NotFoundError),
    ],
)
def test_submit_needs_upload_permission(org, who, error):
    version = uploaded(org, submit=False)
    before = frozen(version)
    with pytest.raises(error) as info:
        services.dataset_version_submit(actor=org.user(who), version=version)
    assert type(info.value) is error
    assert frozen(version) == before


def test_deprecating_an_approved_version(org):
    version = approved(org)
    services.dataset_version_deprecate(
        actor=org.user("alpha.steward"), version=version, reason="prices were in cents"
    )
    version.refresh_from_db()
    assert version.status == VersionStatus.DEPRECATED
    event = AuditEvent.objects.filter(verb="datasetversion.deprecated").get()
    assert event.actor == org.user("alpha.steward")
    assert event.before == {"status": VersionStatus.APPROVED}
    # The required reason is kept in the audit trail.
    assert "prices were in cents" in json.dumps(event.after)

    before = frozen(version)
    with pytest.raises(InvalidTransitionError, match="deprecated: it cannot become deprecated"):
        services.dataset_version_deprecate(
            actor=org.user("alpha.steward"), version=version, reason="again"
        )
    assert frozen(version) == before


def test_a_superseded_version_can_be_deprecated(org):
    v1 = approved(org)
    approved(org, CSV + b"4,Yellow cap,3.5\n")
    v1.refresh_from_db()
    assert v1.status == VersionStatus.SUPERSEDED
    services.dataset_version_deprecate(actor=org.user("alpha.lead"), version=v1, reason="old")
    v1.refresh_from_db()
    assert v1.status == VersionStatus.DEPRECATED


@pytest.mark.parametrize("status", ["draft", "submitted", "rejected"])
def test_only_approved_or_superseded_versions_can_be_deprecated(org, status):
    version = uploaded(org, submit=status != "draft")
    if status == "rejected":
        services.approval_decide(
            actor=org.user("alpha.steward"),
            request=request_of(version),
            verdict="reject",
            comment="bad",
        )
    version.refresh_from_db()
    assert version.status == status
    before = frozen(version)
    with pytest.raises(InvalidTransitionError) as info:
        services.dataset_version_deprecate(
            actor=org.user("alpha.steward"), version=version, reason="no"
        )
    assert f"{status}: it cannot become deprecated" in info.value.message
    assert frozen(version) == before


def test_deprecation_needs_a_steward_and_a_reason(org):
    version = approved(org)
    before = frozen(version)
    with pytest.raises(PermissionDeniedError) as info:
        services.dataset_version_deprecate(
            actor=org.user("alpha.engineer"), version=version, reason="old"
        )
    assert "deprecate versions of this asset" in info.value.message
    with pytest.raises(PermissionDeniedError):
        services.dataset_version_deprecate(
            actor=org.user("beta.steward"), version=version, reason="old"
        )
    with pytest.raises(ValidationError) as info:
        services.dataset_version_deprecate(
            actor=org.user("alpha.steward"), version=version, reason="   "
        )
    assert info.value.field == "reason" and "Say why" in info.value.message
    assert frozen(version) == before


def test_an_oversized_upload_is_refused_before_the_body_is_read(org, client, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.STEWARD_MAX_UPLOAD_BYTES = 10
    client.force_login(org.user("alpha.engineer"))
    response = client.post(
        "/governance/assets/catalog/upload/",
        {"file": SimpleUploadedFile("big.csv", b"id\n" + b"1\n" * 700_000)},
    )
    assert response.status_code == 413
    assert "larger than the limit of 10 bytes" in response.content.decode()
    assert not DatasetVersion.objects.exists()
