"""Over-limit uploads sent to a real server (gunicorn on loopback, as in production), streamed
with and without a Content-Length (chunked transfer encoding, which Django's test client and
threaded live server cannot send): 413 with a clear message on the UI and the API, nothing
stored, the temporary upload folder as it was. A chunked upload under the limit is stored."""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from rest_framework.authtoken.models import Token

from governance.models import DatasetVersion
from tests.conftest import _worker_database_url, build_org

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT = 4096
MESSAGE = "The upload is larger than the limit of 4 KiB"
UI_URL = "/governance/assets/catalog/upload/"
API_URL = "/api/v1/assets/catalog/versions/"
CSRF = "a" * 32
ROOT = Path(__file__).resolve().parent.parent.parent
GUNICORN_OPTIONS = ["--bind", "127.0.0.1:0", "--workers", "1", "--timeout", "30"]
LISTENING = re.compile(r"Listening at: http://127.0.0.1:(\d+)")


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker, tmp_path_factory):
    """gunicorn serving the test database with a 4 KiB upload limit; yields (host, port)."""
    with django_db_blocker.unblock():
        database_url = _worker_database_url()
    env = dict(
        os.environ,
        DATABASE_URL=database_url,
        STEWARD_MAX_UPLOAD_BYTES=str(LIMIT),
        PYTHONUNBUFFERED="1",
    )
    log_path = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "config.wsgi:application", *GUNICORN_OPTIONS],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while not (found := LISTENING.search(log_path.read_text())):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"gunicorn did not start:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.1)
            yield "127.0.0.1", int(found.group(1))
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def multipart(content: bytes, *, csrf: bool) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    fields = [("csrfmiddlewaretoken", CSRF)] if csrf else []
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in [*fields, ("submit", "on")]
    )
    body += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="catalog.csv"'
        "\r\nContent-Type: text/csv\r\n\r\n"
    ).encode()
    body += content + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def send(server, url: str, headers: dict, body: bytes, *, chunked: bool) -> tuple[int, str]:
    """POST `body` with a Content-Length, or in 8 KiB chunks (Transfer-Encoding: chunked)."""
    connection = http.client.HTTPConnection(*server, timeout=20)
    try:
        if chunked:
            pieces = (body[i : i + 8192] for i in range(0, len(body), 8192))
            connection.request("POST", url, body=pieces, headers=headers, encode_chunked=True)
        else:
            connection.request("POST", url, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


def folder_files(path: Path) -> set[Path]:
    return {p for p in path.rglob("*") if p.is_file()} if path.exists() else set()


def csv_of(size: int) -> bytes:
    row = b"1,a product title that is long enough to fill the file quickly,10.5\n"
    return (b"id,title,price\n" + row * (size // len(row) + 1))[:size]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("channel", ["ui", "api"])
def test_an_over_limit_upload_to_a_real_server_is_refused_with_413(server, channel, chunked):
    org = build_org()
    user = org.user("alpha.engineer")
    if channel == "ui":
        browser = Client()
        browser.force_login(user)
        session = browser.cookies[settings.SESSION_COOKIE_NAME].value
        url, headers = (
            UI_URL,
            {"Cookie": f"{settings.SESSION_COOKIE_NAME}={session}; csrftoken={CSRF}"},
        )
    else:
        url, headers = API_URL, {"Authorization": f"Token {Token.objects.create(user=user).key}"}
    media_before = folder_files(Path(settings.MEDIA_ROOT))
    temp_before = folder_files(Path(settings.FILE_UPLOAD_TEMP_DIR))

    # 40 KiB: ten times the limit, and small enough that the server reads or drains what it
    # does not need before it closes (so the client reliably gets the answer).
    body, content_type = multipart(csv_of(40 * 1024), csrf=channel == "ui")
    headers["Content-Type"] = content_type
    status, text = send(server, url, headers, body, chunked=chunked)

    assert status == 413, text[:2000]
    assert MESSAGE in text
    if channel == "api":
        assert '"code":"PayloadTooLargeError"' in text.replace(" ", "")
    assert not DatasetVersion.objects.exists()
    assert folder_files(Path(settings.MEDIA_ROOT)) == media_before
    assert folder_files(Path(settings.FILE_UPLOAD_TEMP_DIR)) == temp_before


def test_a_chunked_upload_under_the_limit_is_stored(server):
    org = build_org()
    token = Token.objects.create(user=org.user("alpha.engineer"))
    content = csv_of(3000)
    body, content_type = multipart(content, csrf=False)
    headers = {"Authorization": f"Token {token.key}", "Content-Type": content_type}
    status, text = send(server, API_URL, headers, body, chunked=True)
    assert status == 201, text[:2000]
    version = DatasetVersion.objects.get()
    assert version.size_bytes == len(content)
    assert Path(version.file.path).read_bytes() == content
