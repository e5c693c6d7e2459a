"""The upload size limit (STEWARD_MAX_UPLOAD_BYTES), enforced while a request body streams in,
for every upload path (the UI form and the API alike):

- `UploadLimitMiddleware` refuses a body whose declared Content-Length is over the limit before
  anything reads it, reads a body without a length (chunked transfer encoding) only up to the
  limit, and parses multipart bodies itself, before the CSRF middleware or a view would, so
  that a refusal is answered with 413 and a clear message (an error page in the UI, the API's
  error JSON under /api/);
- `UploadLimitHandler`, the first of FILE_UPLOAD_HANDLERS, counts the file bytes as they
  arrive and stops the upload as soon as they pass the limit, before the handlers that keep
  uploads in memory or write them to temporary files see the chunk that passed it. Those
  handlers' partial files are closed (so deleted); nothing is stored.
"""

from __future__ import annotations

import tempfile

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.core.handlers.wsgi import LimitedStream
from django.http import JsonResponse
from django.shortcuts import render

from core.errors import PayloadTooLargeError
from governance.constants import UPLOAD_FORM_OVERHEAD_BYTES
from governance.services.versions import max_upload_bytes

READ_BYTES = 64 * 1024


def size_text(n: int) -> str:
    """1073741824 -> "1 GiB", 4096 -> "4 KiB", 1000 -> "1,000 bytes"."""
    for unit, name in ((1024**3, "GiB"), (1024**2, "MiB"), (1024, "KiB")):
        if n >= unit and n % unit == 0:
            return f"{n // unit:,} {name}"
    return f"{n:,} bytes"


def upload_too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"The upload is larger than the limit of {size_text(limit)}. Nothing was stored.",
        field="file",
    )


class UploadLimitHandler(FileUploadHandler):
    """Stops a multipart upload as soon as its file bytes pass STEWARD_MAX_UPLOAD_BYTES."""

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        self.limit = max_upload_bytes()
        self.received = 0
        self.exceeded = False
        if content_length > self.limit + UPLOAD_FORM_OVERHEAD_BYTES:
            raise upload_too_large(self.limit)
        return None  # the body is parsed as usual, through this handler first

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.limit:
            # The parser closes (deletes) the later handlers' partial files and reads no more.
            self.exceeded = True
            raise StopUpload(connection_reset=True)
        return raw_data

    def file_complete(self, file_size):
        return None  # the next handler builds the uploaded file

    def upload_complete(self):
        if self.exceeded:
            raise upload_too_large(self.limit)


class UploadLimitMiddleware:
    """Answers an over-limit request body with 413; placed before CsrfViewMiddleware."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            return self.get_response(request)
        finally:
            spool = request.__dict__.pop("_upload_spool", None)
            if spool is not None:
                spool.close()

    def process_view(self, request, view_func, view_args, view_kwargs):
        # After the other middlewares' request phase (request.user is known for the error
        # page), before any process_view reads the body.
        limit = max_upload_bytes()
        declared = _declared_length(request)
        try:
            if declared > limit + UPLOAD_FORM_OVERHEAD_BYTES:
                raise upload_too_large(limit)
            multipart = request.content_type == "multipart/form-data"
            # Only an upload's chunked body is read (up to the limit) to a temporary file: any
            # other chunked body is left unread, as Django leaves it (no disk for anonymous junk).
            if multipart and declared == 0 and _is_chunked(request):
                _spool_chunked_body(request, limit)
            if request.method == "POST" and multipart:
                request.POST  # noqa: B018 - parsed now, through UploadLimitHandler
        except PayloadTooLargeError as exc:
            return _refusal(request, exc)
        return None


def _declared_length(request) -> int:
    try:
        return max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0


def _is_chunked(request) -> bool:
    """A body without a length whose end the WSGI server marks (gunicorn does; Django itself
    would read such a body as empty)."""
    return bool(request.META.get("wsgi.input_terminated")) and "chunked" in (
        request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
    )


def _spool_chunked_body(request, limit: int) -> None:
    """Read a chunked body, at most up to the limit (plus the room for the form's fields), into
    an unnamed temporary file, and give it to Django with its now known length."""
    cap = limit + UPLOAD_FORM_OVERHEAD_BYTES
    spool = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - closed after the response
        max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE, dir=settings.FILE_UPLOAD_TEMP_DIR
    )
    request._upload_spool = spool
    received = 0
    source = request.META["wsgi.input"]
    while chunk := source.read(READ_BYTES):
        received += len(chunk)
        if received > cap:
            raise upload_too_large(limit)
        spool.write(chunk)
    spool.seek(0)
    request.META["CONTENT_LENGTH"] = str(received)
    request._stream = LimitedStream(spool, received)


def _refusal(request, exc: PayloadTooLargeError):
    if request.path.startswith("/api/"):
        body = {"detail": exc.message, "code": type(exc).__name__, "field": exc.field}
        return JsonResponse(body, status=exc.status_code)
    return render(
        request,
        "413.html",
        {"message": exc.message, "back": request.path},
        status=exc.status_code,
    )
