"""The upload size limit holds while the body streams in, on every upload path (UI form, API):
an over-limit body is refused with 413 and a clear message, no more than the limit reaches the
handlers that write uploads to disk, nothing is stored and the temporary folder is left as it
was. (Bodies without a Content-Length need a real server: tests/integration/test_upload_server.)
"""

from __future__ import annotations

import html

import pytest
from django.core.files.uploadhandler import FileUploadHandler

from core.models import AuditEvent
from governance.models import DatasetVersion
from tests.conftest import api_as, login

pytestmark = pytest.mark.django_db

UI_URL = "/governance/assets/catalog/upload/"
API_URL = "/api/v1/assets/catalog/versions/"
LIMIT = 4096
MESSAGE = "The upload is larger than the limit of 4 KiB"
ROW = b"1,a product title that is long enough to fill the file quickly,10.5\n"


class StoringHandlersSpy(FileUploadHandler):
    """Installed just before Django's own handlers (the ones that keep uploads in memory or
    write them to temporary files): counts the file bytes that reach them."""

    received = 0

    def receive_data_chunk(self, raw_data, start):
        StoringHandlersSpy.received += len(raw_data)
        return raw_data

    def file_complete(self, file_size):
        return None


@pytest.fixture
def limited(settings, tmp_path):
    """A small limit, uploads always written to a temporary file (as big ones are), the spy in
    front of Django's handlers, and empty media and temporary folders to inspect."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.STEWARD_MAX_UPLOAD_BYTES = LIMIT
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 0
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "upload-tmp")
    (tmp_path / "upload-tmp").mkdir()
    handlers = list(settings.FILE_UPLOAD_HANDLERS)
    first_storing = handlers.index("django.core.files.uploadhandler.MemoryFileUploadHandler")
    handlers.insert(first_storing, f"{__name__}.StoringHandlersSpy")
    settings.FILE_UPLOAD_HANDLERS = handlers
    StoringHandlersSpy.received = 0
    return tmp_path


def csv_of(size: int) -> bytes:
    return (b"id,title,price\n" + ROW * (size // len(ROW) + 1))[:size]


def post(channel: str, org, client, content: bytes):
    """Upload `content` through the UI form (a logged-in session) or the API; the status and
    the message shown."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    user = org.user("alpha.engineer")
    upload = SimpleUploadedFile("catalog.csv", content)
    if channel == "ui":
        login(client, user)
        response = client.post(UI_URL, {"file": upload, "note": "", "submit": "on"})
        return response.status_code, html.unescape(response.content.decode())
    response = api_as(user).post(API_URL, {"file": upload}, format="multipart")
    detail = response.json().get("detail", "") if response.content else ""
    return response.status_code, detail


def assert_nothing_stored(tmp_path) -> None:
    assert not DatasetVersion.objects.exists()
    assert not AuditEvent.objects.filter(verb__startswith="datasetversion.").exists()
    media = tmp_path / "media"
    assert not media.exists() or not [p for p in media.rglob("*") if p.is_file()]
    assert list((tmp_path / "upload-tmp").iterdir()) == []


@pytest.mark.parametrize("channel", ["ui", "api"])
def test_a_body_declared_over_the_limit_is_refused_before_it_is_read(org, client, limited, channel):
    status, text = post(channel, org, client, csv_of(1024 * 1024))
    assert status == 413, text
    assert MESSAGE in text
    assert StoringHandlersSpy.received == 0  # not one byte went to the storing handlers
    assert_nothing_stored(limited)


@pytest.mark.parametrize("channel", ["ui", "api"])
def test_a_file_over_the_limit_is_stopped_while_it_streams_in(org, client, limited, channel):
    """A body whose Content-Length is within the room left for the form's other fields, but
    whose file is over the limit: the limit is enforced on the file bytes as they arrive."""
    status, text = post(channel, org, client, csv_of(LIMIT + 5000))
    assert status == 413, text
    assert MESSAGE in text
    assert StoringHandlersSpy.received <= LIMIT
    assert_nothing_stored(limited)


@pytest.mark.parametrize("channel", ["ui", "api"])
def test_a_file_at_the_limit_is_stored(org, client, limited, channel):
    status, text = post(channel, org, client, csv_of(LIMIT))
    assert status in (201, 302), text
    version = DatasetVersion.objects.get()
    assert version.size_bytes == LIMIT
    assert list((limited / "upload-tmp").iterdir()) == []  # the temporary file was moved


@pytest.mark.parametrize(
    ("content_type", "spooled"),
    [("multipart/form-data", True), ("application/json", False)],
)
def test_only_an_uploads_chunked_body_is_read_to_a_temporary_file(
    rf, monkeypatch, content_type, spooled
):
    """A chunked body without a length is read ahead (to a temporary file, up to the limit)
    only for a multipart upload: any other one, e.g. an anonymous JSON body, stays unread, as
    Django leaves it, so nobody can make the server write to disk before authentication."""
    from governance import uploads

    read = []
    monkeypatch.setattr(uploads, "_spool_chunked_body", lambda request, limit: read.append(limit))
    request = rf.post(
        "/api/v1/runs/",
        data=b"",
        content_type=content_type,
        HTTP_TRANSFER_ENCODING="chunked",
        CONTENT_LENGTH="",
    )
    request.META["wsgi.input_terminated"] = True
    request.content_type = content_type  # as WSGIRequest parses it from CONTENT_TYPE
    middleware = uploads.UploadLimitMiddleware(lambda request: None)
    monkeypatch.setattr(type(request), "POST", property(lambda self: {}), raising=False)
    assert middleware.process_view(request, None, (), {}) is None
    assert bool(read) is spooled
