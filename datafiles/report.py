"""What reading a file found besides its rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ReadReport:
    """What reading a file found besides its rows: the text encoding, how many undecodable byte
    sequences were replaced by U+FFFD, and the malformed rows that were skipped."""

    max_examples: int = 50
    encoding: str = "utf-8"
    replaced_characters: int = 0
    rows: int = 0
    malformed_count: int = 0
    malformed_examples: list[dict] = field(default_factory=list)
    header: list[str] | None = None
    member: str | None = None
    hint: str = ""

    def bad(self, line: int | None, error: str) -> None:
        """Count a skipped row; keep the first `max_examples` with their physical line."""
        self.malformed_count += 1
        if len(self.malformed_examples) < self.max_examples:
            example: dict[str, Any] = {"line": line, "error": error}
            if self.member:
                example["member"] = self.member
            self.malformed_examples.append(example)
