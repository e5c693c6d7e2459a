"""Clean step (recsys.pipelines.cleaning): every rule with its examples, determinism, config
hash, cancellation, the demo catalog's planted mess and the real Chorus catalog. No database."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys.pipelines.cleaning import CleanConfig, SchemaError, clean, clean_file
from recsys.pipelines.common import CancelledError

CHORUS = Path("/work/shared/data/chorus-icecat")
ROOT = Path(__file__).resolve().parents[2]


def rule(report: dict, name: str) -> dict:
    return next(r for r in report["rules"] if r["rule"] == name)


def catalog(**columns) -> pd.DataFrame:
    base = {
        "id": ["a", "b", "c"],
        "title": ["Phone One", "Phone Two", "Phone Three"],
        "brand": ["Acme", "Acme", "Acme"],
        "price": [10.0, 11.0, 12.0],
    }
    return pd.DataFrame(base | columns)


def priced(brand: str, prices, category: str | None = None) -> pd.DataFrame:
    n = len(prices)
    frame = pd.DataFrame(
        {
            "id": [f"{brand}{i}" for i in range(n)],
            "title": [f"{brand} item {i}" for i in range(n)],
            "brand": [brand] * n,
            "price": prices,
        }
    )
    return frame.assign(category=category) if category else frame


# --- config -------------------------------------------------------------------------------------


def test_config_hash_is_stable_and_sensitive():
    cfg = CleanConfig()
    assert cfg.config_hash() == CleanConfig().config_hash()
    assert len(cfg.config_hash()) == 64
    assert CleanConfig(price_iqr_k=2.5).config_hash() != cfg.config_hash()
    assert CleanConfig(bot_max_events=21).config_hash() != cfg.config_hash()
    assert CleanConfig(event_types=("view",)).config_hash() != cfg.config_hash()
    code = "from recsys.pipelines.cleaning import CleanConfig; print(CleanConfig().config_hash())"
    other = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert other.stdout.strip() == cfg.config_hash()  # same in a fresh process


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="price_outlier_method"):
        CleanConfig(price_outlier_method="zscore")
    with pytest.raises(ValueError):
        CleanConfig(bot_max_events=0)


# --- schema and entry point ---------------------------------------------------------------------


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="Unknown kind"):
        clean(catalog(), "pictures", CleanConfig())


def test_schema_requires_columns_and_renames_aliases():
    with pytest.raises(SchemaError, match="title"):
        clean(pd.DataFrame({"id": ["a"]}), "product_catalog", CleanConfig())
    frame = pd.DataFrame({"product_id": ["a"], "title": ["Phone"]})
    out, report = clean(frame, "product_catalog", CleanConfig())
    assert list(out.columns) == ["id", "title"]
    assert rule(report, "schema") == {
        "rule": "schema",
        "changed": 1,
        "examples": [{"from": "product_id", "to": "id"}],
    }


def test_report_is_json_and_counts_add_up():
    frame = catalog(id=["a", "a", None], title=["X", "X", "Y"])
    out, report = clean(frame, "product_catalog", CleanConfig())
    json.dumps(report)
    removed = sum(r.get("removed", 0) for r in report["rules"])
    assert report["rows_in"] - report["rows_out"] == removed == 2
    assert report["kind"] == "product_catalog"
    assert report["config_hash"] == CleanConfig().config_hash()
    assert report["elapsed_seconds"] >= 0 and report["rows_per_second"] > 0
    assert list(out.index) == list(range(len(out)))


# --- catalog: text normalisation ----------------------------------------------------------------


def test_html_entities_tags_unicode_and_whitespace_are_normalised():
    frame = catalog(
        title=["Cable &amp; Adapter", "<b>Big</b>  Phone\tcase", "ＵＳＢ\u00a0Hub"],
        description=["Caf&eacute; &#8211; ok", "<ul><li>One</li></ul>", "  spaced   out  "],
    )
    out, report = clean(frame, "product_catalog", CleanConfig())
    assert out["title"].tolist() == ["Cable & Adapter", "Big Phone case", "USB Hub"]
    assert out["description"].tolist() == ["Café – ok", "One", "spaced out"]
    entities = rule(report, "html_entities")
    assert entities["changed"] == 1
    assert entities["examples"][0] == {
        "column": "title",
        "before": "Cable &amp; Adapter",
        "after": "Cable & Adapter",
    }
    assert rule(report, "html_tags")["changed"] == 1
    assert rule(report, "unicode_nfkc")["examples"][0]["after"] == "USB Hub"
    assert rule(report, "whitespace")["changed"] == 2  # rows, not cells


def test_escaped_tags_are_unescaped_then_stripped():
    out, _ = clean(
        catalog(title=["A &lt;i&gt;B&lt;/i&gt;", "B", "C"]), "product_catalog", CleanConfig()
    )
    assert out["title"][0] == "A B"


# --- catalog: invalid rows ----------------------------------------------------------------------


def test_invalid_rows_are_removed_but_missing_description_kept():
    frame = pd.DataFrame(
        {
            "id": ["ok", None, "  ", "t1", "p0", "p1", "p2", "p3", "nodesc"],
            "title": ["Fine", "No id", "Blank id", "   ", "Zero", "Neg", "Nan", "Text", "Kept"],
            "price": [5, 5, 5, 5, 0, -2, None, "abc", 7],
            "description": ["d"] * 8 + [""],
        }
    )
    out, report = clean(frame, "product_catalog", CleanConfig())
    assert out["id"].tolist() == ["ok", "nodesc"]
    assert pd.isna(out["description"][1])
    assert rule(report, "missing_id")["removed"] == 2
    assert rule(report, "missing_title")["examples"][0]["id"] == "t1"
    bad_price = rule(report, "invalid_price")
    assert bad_price["removed"] == 4
    assert [e["id"] for e in bad_price["examples"]] == ["p0", "p1", "p2", "p3"]
    assert bad_price["examples"][0]["price"] == 0


def test_catalog_without_price_column_skips_price_rules():
    frame = pd.DataFrame({"id": ["a", "b"], "title": ["X", "Y"]})
    out, report = clean(frame, "product_catalog", CleanConfig())
    assert len(out) == 2
    assert "invalid_price" not in [r["rule"] for r in report["rules"]]


def test_integral_float_ids_lose_their_decimal_point():
    out, _ = clean(catalog(id=[1.0, 2.0, 3.0]), "product_catalog", CleanConfig())
    assert out["id"].tolist() == ["1", "2", "3"]


# --- catalog: duplicates ------------------------------------------------------------------------


def test_exact_duplicates_and_duplicate_ids():
    frame = catalog(
        id=["a", "a", "a", "b"],
        title=["Phone", "Phone", "Other phone", "Tablet"],
        brand=["Acme"] * 4,
        price=[10.0, 10.0, 12.0, 30.0],
    )
    out, report = clean(frame, "product_catalog", CleanConfig())
    assert out["id"].tolist() == ["a", "b"]
    assert rule(report, "exact_duplicates")["removed"] == 1
    duplicate_id = rule(report, "duplicate_id")
    assert duplicate_id["removed"] == 1
    assert duplicate_id["examples"][0]["title"] == "Other phone"


def test_near_duplicates_by_ean_keep_the_most_complete_row():
    frame = pd.DataFrame(
        {
            "id": ["x1", "x2", "x3", "x4", "x5"],
            "title": ["Cam A", "Cam A v2", "Lens", "Lens two", "Odd"],
            "brand": ["Acme", "Acme", "Beta", "Beta", "Gamma"],
            "description": [None, "has text", "d", "d", "d"],
            "ean": [
                "4006381333931",
                "04006381333931",
                "1111111111116,5000000000002",
                "5000000000002",
                "0000000000000",
            ],
            "price": [10.0, 10.0, 5.0, 5.0, 1.0],
        }
    )
    out, report = clean(frame, "product_catalog", CleanConfig())
    assert out["id"].tolist() == ["x2", "x3", "x5"]
    near = rule(report, "near_duplicate_ean")
    assert near["removed"] == 2
    assert {(e["id"], e["duplicate_of"]) for e in near["examples"]} == {("x1", "x2"), ("x4", "x3")}


def test_near_duplicates_by_title_and_brand():
    frame = catalog(
        id=["a", "b", "c", "d"],
        title=["Phone-One (Black)", "phone one black", "Phone One Black", "Phone Two"],
        brand=["Acme", "ACME", "Other", "Acme"],
        price=[1.0, 2.0, 3.0, 4.0],
    )
    out, report = clean(frame, "product_catalog", CleanConfig())
    assert out["id"].tolist() == ["a", "c", "d"]
    example = rule(report, "near_duplicate_title_brand")["examples"][0]
    assert example["id"] == "b" and example["duplicate_of"] == "a"
    out, report = clean(frame, "product_catalog", CleanConfig(near_dup_title_brand=False))
    assert len(out) == 4 and "near_duplicate_title_brand" not in str(report)


def test_same_title_and_brand_with_different_eans_are_variants_not_duplicates():
    frame = catalog(
        id=["a", "b", "c", "d"],
        title=["Toner 301", "Toner 301", "Toner 301", "Toner 301"],
        brand=["HP", "HP", "HP", "HP"],
        ean=["4006381333931", "4006381333948", "4006381333948", "0"],
        price=[1.0, 2.0, 3.0, 4.0],
    )
    out, report = clean(frame, "product_catalog", CleanConfig(near_dup_ean=False))
    assert out["id"].tolist() == ["a", "b", "d"]  # c repeats b's EAN; d has no valid EAN
    example = rule(report, "near_duplicate_title_brand")["examples"][0]
    assert example["id"] == "c" and example["duplicate_of"] == "b"


# --- catalog: price outliers --------------------------------------------------------------------


def test_price_outliers_per_brand_and_category():
    rng = np.random.default_rng(0)
    normal = list(np.round(rng.uniform(90, 110, 12), 2))
    frame = pd.concat(
        [
            priced("Acme", [*normal, 10_000.0], "phones"),  # cents entered as units
            priced("Acme", [n * 20 for n in normal], "laptops"),  # dearer, but its own group
            priced("Tiny", [10.0, 11.0, 5_000.0]),  # group too small to judge
        ],
        ignore_index=True,
    )
    out, report = clean(frame, "product_catalog", CleanConfig())
    outliers = rule(report, "price_outliers")
    assert outliers["removed"] == 1
    example = outliers["examples"][0]
    assert example["id"] == "Acme12" and example["price"] == 10_000.0
    assert example["category"] == "phones" and 90 < example["group_median"] < 110
    assert example["score"] > CleanConfig().price_iqr_k
    assert "Tiny2" in set(out["id"])


def test_price_outliers_with_mad_method_and_off():
    frame = priced("Acme", [100.0, 101.0, 99.0, 102.0, 98.0, 100.5, 99.5, 100.0, 20_000.0])
    _, report = clean(frame, "product_catalog", CleanConfig(price_outlier_method="mad"))
    assert rule(report, "price_outliers")["examples"][0]["price"] == 20_000.0
    out, report = clean(frame, "product_catalog", CleanConfig(price_outlier_method="none"))
    assert len(out) == len(frame) and "price_outliers" not in str(report)


# --- queries, labels, events -------------------------------------------------------------------


def test_queries_are_normalised_and_deduplicated():
    frame = pd.DataFrame({"query": ["GPS  Watch", "gps watch", " &amp; ", "Ｌａｍｐ", None]})
    out, report = clean(frame, "queries", CleanConfig())
    assert out["query"].tolist() == ["gps watch", "&", "lamp"]
    assert rule(report, "casefold")["changed"] == 2
    assert rule(report, "missing_query")["removed"] == 1
    assert rule(report, "duplicate_query")["examples"] == [{"query": "gps watch"}]


def test_labels_rules():
    frame = pd.DataFrame(
        {
            "query": ["Lamp", "lamp", "lamp", None, "lamp", "lamp", "lamp", "desk"],
            "product": ["p1", "p1", "p2", "p3", "p4", "p5", "p6", "p1"],
            "grade": [1, 3, "2", 2, 4, 1.5, "x", 0],
        }
    )
    out, report = clean(frame, "relevance_labels", CleanConfig())
    assert out.to_dict("list") == {
        "query": ["lamp", "lamp", "desk"],
        "product_id": ["p1", "p2", "p1"],
        "grade": [3, 2, 0],
    }
    assert rule(report, "missing_key")["removed"] == 1
    invalid = rule(report, "invalid_grade")
    assert invalid["removed"] == 3
    assert [e["grade"] for e in invalid["examples"]] == ["4", "1.5", "x"]
    assert rule(report, "duplicate_judgments")["examples"] == [
        {"query": "lamp", "product_id": "p1", "grade": 1}
    ]


def events_frame(bot_events: int = 25) -> pd.DataFrame:
    human = {"user_id": ["u1"] * 4, "product_id": ["p1", "p2", "p3", "p1"]}
    human |= {"event": ["view", "Click", "cart", "purchase"], "ts": [0, 40, 80, 120]}
    bot = {"user_id": ["bot"] * bot_events, "product_id": ["p9"] * bot_events}
    bot |= {"event": ["click"] * bot_events, "ts": list(range(bot_events))}
    bad = {"user_id": ["u2", "u3", "u4"], "product_id": ["p1", "p1", None]}
    bad |= {"event": ["hover", "view", "view"], "ts": [5, None, 7]}
    return pd.concat([pd.DataFrame(d) for d in (human, bot, bad)], ignore_index=True)


def test_events_rules_and_bot_bursts():
    out, report = clean(events_frame(), "behaviour_events", CleanConfig())
    assert out["user_id"].tolist() == ["u1"] * 4
    assert out["event"].tolist() == ["view", "click", "cart", "purchase"]
    bursts = rule(report, "bot_bursts")
    assert bursts["removed"] == 25 and bursts["users"] == 1
    assert bursts["examples"] == [{"user_id": "bot", "events": 25}]
    assert rule(report, "unknown_event_type")["examples"][0]["event"] == "hover"
    assert rule(report, "invalid_time")["removed"] == 1
    assert rule(report, "missing_key")["removed"] == 1


def test_bot_burst_threshold_is_more_than_n_in_the_window():
    cfg = CleanConfig(bot_max_events=20, bot_window_seconds=60)
    out, _ = clean(events_frame(bot_events=20), "behaviour_events", cfg)
    assert "bot" in set(out["user_id"])  # 20 events in 20 s: allowed
    out, _ = clean(events_frame(bot_events=21), "behaviour_events", cfg)
    assert "bot" not in set(out["user_id"])
    spread = events_frame(bot_events=21).assign(ts=lambda f: f["ts"] * 10)  # over 200 s
    out, _ = clean(spread, "behaviour_events", cfg)
    assert "bot" in set(out["user_id"])


def test_event_times_parse_iso_strings_and_exact_duplicates_go():
    frame = pd.DataFrame(
        {
            "user": ["u1", "u1", "u1"],
            "product": ["p1", "p1", "p2"],
            "event_type": ["view", "view", "click"],
            "timestamp": ["2025-01-01T00:00:00Z", "2025-01-01T00:00:00Z", "1735689660"],
        }
    )
    out, report = clean(frame, "behaviour_events", CleanConfig())
    assert out["ts"].tolist() == [1735689600.0, 1735689660.0]
    assert rule(report, "exact_duplicates")["removed"] == 1


# --- determinism, cancellation, vectorisation ---------------------------------------------------


def messy_catalog() -> pd.DataFrame:
    from data.demo_generator import catalog_rows

    return pd.DataFrame(catalog_rows(400))


def test_clean_is_deterministic():
    first, report1 = clean(messy_catalog(), "product_catalog", CleanConfig())
    second, report2 = clean(messy_catalog(), "product_catalog", CleanConfig())
    pd.testing.assert_frame_equal(first, second)
    assert report1["rules"] == report2["rules"]


def test_should_stop_cancels_between_rules_and_progress_is_reported():
    calls = []
    with pytest.raises(CancelledError, match="invalid_price"):
        clean(
            messy_catalog(),
            "product_catalog",
            CleanConfig(),
            should_stop=lambda: len(calls) >= 5,
            progress=lambda fraction, step: calls.append((fraction, step)),
        )
    seen = []
    clean(messy_catalog(), "product_catalog", CleanConfig(), progress=lambda f, s: seen.append(f))
    assert seen == sorted(seen) and seen[0] == 0.0 and seen[-1] == 1.0


def test_no_row_wise_python(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("row-wise Python in clean()")

    for owner, name in [
        (pd.DataFrame, "apply"),
        (pd.DataFrame, "iterrows"),
        (pd.DataFrame, "itertuples"),
        (pd.Series, "apply"),
    ]:
        monkeypatch.setattr(owner, name, refuse)
    clean(messy_catalog(), "product_catalog", CleanConfig())
    clean(events_frame(), "behaviour_events", CleanConfig())


# --- the demo catalog's planted mess ------------------------------------------------------------


def test_demo_catalog_planted_mess_is_found():
    from data.demo_generator import catalog_rows

    rows = catalog_rows()
    tidy = {r["id"]: r["price"] for r in catalog_rows(messy=False)}
    planted_outliers = {
        r["id"]
        for r in rows
        if "-DUP" not in r["id"] and r["price"] == pytest.approx(tidy[r["id"]] * 100)
    }
    invalid = [
        {"id": "BAD1", "title": "", "brand": "Acmetron", "price": 10.0},
        {"id": "BAD2", "title": "Broken", "brand": "Acmetron", "price": -1.0},
    ]
    frame = pd.DataFrame(rows + invalid)
    out, report = clean(frame, "product_catalog", CleanConfig())
    kept = set(out["id"])

    entity_rows = sum("&amp;" in r["title"] for r in rows)
    assert rule(report, "html_entities")["changed"] == entity_rows > 0
    assert rule(report, "html_tags")["changed"] == entity_rows
    assert not out["title"].str.contains("&amp;|<b>", regex=True).any()
    assert {"BAD1", "BAD2"}.isdisjoint(kept)
    assert rule(report, "missing_title")["removed"] == rule(report, "invalid_price")["removed"] == 1
    dups = {r["id"] for r in rows if r["id"].endswith("-DUP")}
    assert dups and dups.isdisjoint(kept)
    examples = rule(report, "near_duplicate_ean")["examples"]
    assert all(e["duplicate_of"] == e["id"].removesuffix("-DUP") for e in examples)
    assert planted_outliers and planted_outliers.isdisjoint(kept)
    assert rule(report, "price_outliers")["removed"] == len(planted_outliers)
    empty_descriptions = {r["id"] for r in rows if r["description"] == "" and "-DUP" not in r["id"]}
    kept_empty = empty_descriptions & kept
    assert kept_empty and out.loc[out["id"].isin(kept_empty), "description"].isna().all()


# --- files and the real Chorus catalog ----------------------------------------------------------


def test_clean_file_writes_csv_and_parquet(tmp_path):
    source = tmp_path / "catalog.csv"
    catalog(id=["a", "a", "b"], title=["X &amp; Y", "X &amp; Y", "Z"]).to_csv(source, index=False)
    report = clean_file(
        source, fmt="csv", kind="product_catalog", cfg=CleanConfig(), out_path=tmp_path / "o.csv"
    )
    assert report["rows_in"] == 3 and report["rows_out"] == 2
    assert report["read"]["malformed_rows"] == 0 and report["out_path"].endswith("o.csv")
    assert pd.read_csv(tmp_path / "o.csv")["title"].tolist() == ["X & Y", "Z"]
    clean_file(
        source,
        fmt="csv",
        kind="product_catalog",
        cfg=CleanConfig(),
        out_path=tmp_path / "o.parquet",
    )
    assert pd.read_parquet(tmp_path / "o.parquet")["id"].tolist() == ["a", "b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalog.csv", "o.csv", "o.parquet"]


@pytest.mark.skipif(not (CHORUS / "1.json.zip").exists(), reason="Chorus data set not present")
def test_real_chorus_catalog_is_cleaned(tmp_path):
    from datafiles import read_chorus_products

    frame = pd.concat(list(read_chorus_products(CHORUS / "1.json.zip")), ignore_index=True)
    out, report = clean(frame, "product_catalog", CleanConfig())
    assert report["rows_in"] == 5000 and 4000 < report["rows_out"] < 5000
    assert rule(report, "html_entities")["changed"] > 0
    assert rule(report, "html_tags")["changed"] > 0
    # Chorus titles repeat across variants with their own EANs: none of them is a duplicate.
    assert rule(report, "near_duplicate_title_brand")["removed"] == 0
    assert not out["description"].dropna().str.contains("<br", regex=False).any()
    json.dumps(report)
    written = clean_file(
        CHORUS / "1.json.zip",
        fmt="chorus-products",
        kind="product_catalog",
        cfg=CleanConfig(),
        out_path=tmp_path / "chorus.parquet",
    )
    assert written["rows_out"] == report["rows_out"]
    assert len(pd.read_parquet(tmp_path / "chorus.parquet")) == report["rows_out"]
