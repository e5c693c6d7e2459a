"""Benchmark recsys.pipelines.cleaning.clean on a large synthetic product catalog: rows/minute.

Builds a deterministic (seeded) catalog of 1,000,000 rows by default with numpy/pandas vectorised
generation (no per-row Python), with the kinds of mess the demo data has and a few more:
HTML entities and tags, non-ASCII (full-width, no-break spaces), messy whitespace, missing
descriptions, missing titles, non-positive or missing prices, exact duplicate rows, "-DUP"
near-duplicates sharing an EAN (some written as GTIN-14 with a leading zero) and price outliers
(cents entered as units). Times `clean()` alone (generation is reported apart) and prints a JSON
object and a small table. Target: >= 500,000 rows/minute.

    .venv/bin/python bench/clean_catalog.py [--rows N] [--seed N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_ROWS_PER_MINUTE = 500_000
KINDS = ["Headphones", "Earbuds", "Laptop", "Monitor", "Smartphone", "Watch", "Camera", "Router"]
COLOURS = ["black", "silver", "blue", "white", "red"]
WORDS = ["compact", "wireless", "fast", "durable", "premium", "light", "quiet", "bright", "smart"]


def _pick(rng, values, rows: int):
    import numpy as np
    import pandas as pd

    return pd.Series(np.asarray(values, dtype=object)[rng.integers(0, len(values), rows)])


def _base(rng, rows: int):
    """Clean rows: id, title, description, category, brand, price, ean."""
    import numpy as np
    import pandas as pd

    brands = [f"Brand{n:03d}" for n in range(200)]
    categories = [f"cat{n:02d}" for n in range(20)]
    brand, kind, colour = (
        _pick(rng, brands, rows),
        _pick(rng, KINDS, rows),
        _pick(rng, COLOURS, rows),
    )
    model = pd.Series(rng.integers(10_000, 999_999, rows)).astype(str)
    category = _pick(rng, categories, rows)
    words = [_pick(rng, WORDS, rows) for _ in range(6)]
    description = words[0].str.cat([*words[1:], kind, "by " + brand], sep=" ")
    scale = np.exp(rng.normal(5.0, 1.0, 20))[category.str[3:].astype(int).to_numpy()]
    return pd.DataFrame(
        {
            "id": "P" + pd.Series(np.arange(rows)).astype(str).str.zfill(8),
            "title": brand.str.cat([kind, "M" + model, "(" + colour + ")"], sep=" "),
            "description": description + ". Model " + model + ".",
            "category": category,
            "brand": brand,
            "price": np.round(scale * rng.lognormal(0.0, 0.35, rows), 2),
            "ean": pd.Series(rng.integers(10**12, 10**13 - 1, rows)).astype(str),
        }
    )


def _mess(rng, df):
    """Planted mess; returns (frame, counts of what was planted)."""
    import numpy as np
    import pandas as pd

    rows = len(df)

    def pick(fraction):
        return rng.random(rows) < fraction

    planted = {}
    m = pick(0.02)
    df.loc[m, "title"] = df.loc[m, "title"].str.replace(" ", " &amp; ", n=1) + " <b>NEW</b>"
    planted["entities_and_tags"] = int(m.sum())
    m = pick(0.01)
    df.loc[m, "description"] = "<ul><li>" + df.loc[m, "description"] + "</li></ul>"
    m = pick(0.01)
    df.loc[m, "title"] = df.loc[m, "title"].str.replace(" ", "\u00a0", n=1) + " ＵＳＢ-Ｃ"
    planted["non_ascii"] = int(m.sum())
    m = pick(0.01)
    df.loc[m, "title"] = "  " + df.loc[m, "title"].str.replace(" ", "\t ", n=1) + " "
    df.loc[pick(0.025), "description"] = None
    m = pick(0.005)
    df.loc[m, "price"] = df.loc[m, "price"] * 100
    planted["price_outliers"] = int(m.sum())
    m = pick(0.001)
    df.loc[m, "price"] = rng.choice([0.0, -1.0, np.nan], int(m.sum()))
    m = pick(0.001)
    df.loc[m, "title"] = rng.choice(np.array(["", "   ", None], dtype=object), int(m.sum()))
    dup = df.loc[pick(0.01)].copy()
    dup["id"] = dup["id"] + "-DUP"
    gtin = rng.random(len(dup)) < 0.3
    dup.loc[gtin, "ean"] = "0" + dup.loc[gtin, "ean"]
    planted["near_duplicates"] = len(dup)
    exact = df.loc[pick(0.005)]
    planted["exact_duplicates"] = len(exact)
    out = pd.concat([df, dup, exact], ignore_index=True)
    return out.sample(frac=1.0, random_state=int(rng.integers(0, 2**31))), planted


def synthetic_catalog(rows: int, seed: int = 2024):
    """A deterministic messy catalog of about `rows` rows (before the planted duplicates)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return _mess(rng, _base(rng, rows))


def run(rows: int, seed: int) -> dict:
    sys.path.insert(0, str(ROOT))
    from recsys.pipelines.cleaning import CleanConfig, clean

    started = time.perf_counter()
    df, planted = synthetic_catalog(rows, seed)
    generated = time.perf_counter() - started
    started = time.perf_counter()
    out, report = clean(df, "product_catalog", CleanConfig())
    seconds = time.perf_counter() - started
    per_rule = {r["rule"]: r.get("removed", r.get("changed", 0)) for r in report["rules"]}
    return {
        "rows": len(df),
        "rows_out": len(out),
        "seconds": round(seconds, 3),
        "rows_per_minute": round(len(df) / seconds * 60),
        "target_rows_per_minute": TARGET_ROWS_PER_MINUTE,
        "meets_target": len(df) / seconds * 60 >= TARGET_ROWS_PER_MINUTE,
        "generate_seconds": round(generated, 3),
        "planted": planted,
        "per_rule": per_rule,
    }


def _table(result: dict) -> str:
    lines = [
        f"{'rows':<28}{result['rows']:>14,}",
        f"{'rows out':<28}{result['rows_out']:>14,}",
        f"{'seconds (clean only)':<28}{result['seconds']:>14.2f}",
        f"{'rows/minute':<28}{result['rows_per_minute']:>14,}",
        f"{'target rows/minute':<28}{result['target_rows_per_minute']:>14,}",
        "",
        f"{'rule':<28}{'rows':>14}",
    ]
    lines += [f"{rule:<28}{count:>14,}" for rule, count in result["per_rule"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args(argv)
    result = run(args.rows, args.seed)
    print(json.dumps(result, indent=2))
    print()
    print(_table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
