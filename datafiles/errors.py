"""The one error of reading a data file."""

from __future__ import annotations


class DatasetReadError(Exception):
    """A file that cannot be read (and so cannot be profiled).

    `code` is a short machine word (empty, truncated, wrong_content, malformed, too_large,
    too_slow, unsupported_format), `message` a specific sentence for the uploader, `line` the
    1-based line where the problem sits when one is known."""

    def __init__(self, code: str, message: str, *, line: int | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.line = line

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "line": self.line}
