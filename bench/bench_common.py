"""What the benchmark scripts share: the scratch folder they write under, the fine-tuning
variants they compare, and printing a result as JSON, then a blank line, then a table."""

import argparse
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# fp32 / bf16 autocast, each with plain batches or batches grouped by text length (what the
# pipeline trains with: bf16+grouped where the CPU has native bf16).
TRAINING_VARIANTS = ("fp32", "bf16", "fp32+grouped", "bf16+grouped")


def training_flags(variant: str) -> dict[str, bool]:
    """TrainConfig / steps.fine_tune keywords of a TRAINING_VARIANTS name."""
    return {"bf16": variant.startswith("bf16"), "group_by_length": variant.endswith("+grouped")}


def add_scratch_dir(parser: argparse.ArgumentParser) -> None:
    """--var-dir: $STEWARD_VAR_DIR, else a folder under the system's temporary directory."""
    default = os.environ.get("STEWARD_VAR_DIR") or os.path.join(
        tempfile.gettempdir(), "steward-bench-var"
    )
    parser.add_argument("--var-dir", default=default, help="scratch and cache folder")


def check_scratch_dir(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse the repository's own var/ as the scratch folder."""
    if Path(args.var_dir).resolve() == (ROOT / "var").resolve():
        parser.error("use a scratch --var-dir / STEWARD_VAR_DIR, not the repository's var/")


def print_result(result: dict, table: Callable[[dict], str]) -> None:
    print(json.dumps(result, indent=2))
    print()
    print(table(result))
