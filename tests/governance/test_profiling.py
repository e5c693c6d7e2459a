"""governance.profiling: the statistics and schema checks of a profile, on small files in
tmp_path (no database). Reading the files (formats, bad input, limits) is tested in
tests/datafiles/."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datafiles import FORMATS
from governance.profiling import COLUMN_TYPES, SchemaContract, profile_file
from tests.datafiles.files import (
    CHORUS,
    CHORUS_RECORDS,
    CSV,
    parquet_bytes,
    write,
    zipped,
)


def profile(path: Path, **kwargs) -> dict:
    """profile_file, asserting that the result is strict JSON."""
    result = profile_file(path, **kwargs)
    json.dumps(result, allow_nan=False)
    return result


def column(result: dict, name: str) -> dict:
    return next(c for c in result["columns"] if c["name"] == name)


# --- every format -----------------------------------------------------------------------------


def test_csv_profile(tmp_path):
    result = profile(write(tmp_path, "a.csv", CSV), fmt="csv")
    assert result["format"] == "csv" and result["rows"] == 3
    price = column(result, "price")
    assert price["dtype"] == "float" and price["null_count"] == 1
    assert price["null_rate"] == pytest.approx(1 / 3)
    assert (price["min"], price["max"], price["mean"]) == (1.5, 2.25, pytest.approx(1.875))
    assert column(result, "id")["top_values"] == [[1, 1], [2, 1], [3, 1]]
    assert column(result, "name")["dtype"] == "string"
    assert result["encoding"] == {"encoding": "utf-8", "replaced_characters": 0}
    assert result["malformed_rows"] == {"count": 0, "examples": []}
    assert result["key"] is None and result["schema"] is None
    assert result["elapsed_seconds"] >= 0 and result["rows_per_second"] > 0


def test_tsv_profile_reads_quotes_literally(tmp_path):
    path = write(tmp_path, "a.tsv", 'id\tname\n1\t17" screen\n2\tplain\n')
    result = profile(path, fmt="tsv")
    assert result["rows"] == 2
    assert ['17" screen', 1] in column(result, "name")["top_values"]


def test_jsonl_profile_with_sparse_fields(tmp_path):
    lines = ['{"id": 1, "tags": ["a"]}', '{"id": 2, "extra": true}', '{"id": 3, "tags": []}']
    result = profile(write(tmp_path, "a.jsonl", "\n".join(lines) + "\n"), fmt="jsonl")
    assert result["rows"] == 3
    assert column(result, "id")["dtype"] == "integer"
    assert column(result, "extra")["null_count"] == 2
    assert column(result, "tags")["top_values"] == [['["a"]', 1], ["[]", 1]]


def test_json_array_and_single_object(tmp_path):
    array = json.dumps([{"id": 1, "ok": True}, {"id": 2, "ok": False}], indent=2)
    result = profile(write(tmp_path, "a.json", array), fmt="json")
    assert result["rows"] == 2 and column(result, "ok")["dtype"] == "boolean"
    single = json.dumps({"id": 7, "name": "only"}, indent=2)
    assert profile(write(tmp_path, "b.json", single), fmt="json")["rows"] == 1


def test_json_array_streams_across_blocks(tmp_path):
    records = [{"id": n, "price": n * 1.25, "name": f"item {n}" * 5} for n in range(40_000)]
    records[30_000] = 42  # an element that is not an object, far past the first 1 MiB block
    text = json.dumps(records, indent=1)
    assert len(text) > 3 * (1 << 20)
    line = text.splitlines().index(" 42,") + 1
    result = profile(write(tmp_path, "big.json", text), fmt="json", chunk_rows=7_000)
    assert result["rows"] == 39_999
    assert result["malformed_rows"]["examples"] == [
        {"line": line, "error": "expected a JSON object, found a number"}
    ]
    expected = sum(r["price"] for r in records if isinstance(r, dict)) / 39_999
    assert column(result, "price")["mean"] == pytest.approx(expected)


def test_parquet_profile(tmp_path):
    frame = pd.DataFrame(
        {
            "id": pd.array([1, 2, None, 4], dtype="Int64"),
            "price": [1.0, 2.5, None, 4.0],
            "name": ["a", "b", None, "d"],
            "seen": pd.to_datetime(["2024-01-01", "2024-02-01", None, "2024-03-01"]),
        }
    )
    result = profile(
        write(tmp_path, "a.parquet", parquet_bytes(frame)), fmt="parquet", chunk_rows=3
    )
    assert result["rows"] == 4
    assert column(result, "id")["dtype"] == "integer" and column(result, "id")["null_count"] == 1
    seen = column(result, "seen")
    assert seen["dtype"] == "datetime" and seen["min"].startswith("2024-01-01")
    assert seen["max"].startswith("2024-03-01")


def test_gzip_and_zip_wrappers(tmp_path):
    assert profile(write(tmp_path, "a.csv.gz", gzip.compress(CSV.encode())), fmt="csv")["rows"] == 3
    jsonl = '{"a": 1}\n{"a": 2}\n'
    assert (
        profile(write(tmp_path, "a.jsonl.gz", gzip.compress(jsonl.encode())), fmt="jsonl")["rows"]
        == 2
    )
    two = zipped({"part1.csv": CSV, "__MACOSX/._part1.csv": "junk", "part2.csv": CSV + "4,x,y\n"})
    result = profile(write(tmp_path, "parts.csv.zip", two), fmt="csv")
    assert result["rows"] == 7
    # "y" is not a number: the second member's price column is text
    assert column(result, "price")["dtype"] == "string"
    data = parquet_bytes(pd.DataFrame({"a": range(10)}))
    assert (
        profile(write(tmp_path, "a.parquet.gz", gzip.compress(data)), fmt="parquet")["rows"] == 10
    )
    both = zipped({"1.parquet": data, "2.parquet": data})
    assert profile(write(tmp_path, "a.parquet.zip", both), fmt="parquet")["rows"] == 20


# --- Chorus formats ---------------------------------------------------------------------------


def test_chorus_products_are_keyed_by_id(tmp_path):
    archive = zipped(
        {"1.json": json.dumps(CHORUS_RECORDS[:2]), "2.json": json.dumps(CHORUS_RECORDS[2:])}
    )
    path = write(tmp_path, "1.json.zip", archive)
    result = profile(path, fmt="chorus-products")
    assert result["key"] == {
        "column": "id",
        "duplicates": 1,
        "duplicate_rate": pytest.approx(1 / 3),
    }


def test_chorus_judgment_grades_are_integers(tmp_path):
    path = write(tmp_path, "j.csv", "query,product_id,grade\ngps watch,77382335,3\ntv,1,0\n")
    assert column(profile(path, fmt="chorus-judgments"), "grade")["dtype"] == "integer"


@pytest.mark.skipif(not (CHORUS / "1.json.zip").exists(), reason=f"{CHORUS} is not present")
def test_real_chorus_products_file():
    contract = SchemaContract.from_dict(
        {
            "columns": {"id": "string", "title": "string", "brand": "string", "price": "float"},
            "key": "id",
        }
    )
    result = profile(CHORUS / "1.json.zip", fmt="chorus-products", contract=contract)
    assert result["rows"] > 4000
    assert result["key"]["column"] == "id" and isinstance(result["key"]["duplicates"], int)
    assert 0.0 <= result["key"]["duplicate_rate"] < 1.0
    assert column(result, "brand")["null_rate"] < 0.05
    price = column(result, "price")
    assert price["dtype"] == "float" and 0 < price["min"] <= price["mean"] <= price["max"]
    assert result["schema"]["ok"] and result["schema"]["extra"]


@pytest.mark.skipif(not (CHORUS / "judgments.csv").exists(), reason=f"{CHORUS} is not present")
def test_real_chorus_judgments_file():
    result = profile(CHORUS / "judgments.csv", fmt="chorus-judgments")
    assert 2000 < result["rows"] < 2300  # 2,107 graded pairs
    grade = column(result, "grade")
    assert grade["dtype"] == "integer" and (grade["min"], grade["max"]) == (0, 3)
    assert column(result, "product_id")["dtype"] == "string"


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le"])
def test_utf16_is_detected(tmp_path, codec):
    path = write(tmp_path, "a.csv", "id,name\n1,café\n2,naïve\n".encode(codec))
    result = profile(path, fmt="csv")
    assert result["rows"] == 2 and result["encoding"]["encoding"] == codec
    assert result["encoding"]["replaced_characters"] == 0
    assert column(result, "name")["top_values"] == [["café", 1], ["naïve", 1]]


BAD_CSV = (
    "id,name,price\n"  # 1
    "1,a,1.5\n"  # 2
    '2,"multi\n'  # 3
    'line",2.5\n'  # 4
    "3,b\n"  # 5: too few fields
    "\n"  # 6: blank, skipped silently
    "4,c,3.5,extra\n"  # 7: too many fields
    "6,d,5.5\n"  # 8
    "7,e,6.5\n"  # 9
    '8,"unclosed,9.5'  # 10: the quote runs to the end of the file; no final newline
)


@pytest.mark.parametrize("chunk_rows", [1, 2, 100])
def test_malformed_csv_rows_are_skipped_and_reported_by_physical_line(tmp_path, chunk_rows):
    result = profile(write(tmp_path, "a.csv", BAD_CSV), fmt="csv", chunk_rows=chunk_rows)
    assert result["rows"] == 4
    examples = result["malformed_rows"]["examples"]
    assert [e["line"] for e in examples] == [5, 7, 10]
    assert examples[0]["error"] == "expected 3 fields as in the header, found 2"
    assert examples[1]["error"] == "expected 3 fields as in the header, found 4"
    assert result["malformed_rows"]["count"] == 3
    ids = sorted(v for v, _ in column(result, "id")["top_values"])
    assert ids == [1, 2, 6, 7]
    assert column(result, "name")["top_values"][1] == ["d", 1]
    assert ["multi\nline", 1] in column(result, "name")["top_values"]
    assert column(result, "price")["mean"] == pytest.approx((1.5 + 2.5 + 5.5 + 6.5) / 4)


def test_malformed_examples_are_capped(tmp_path):
    path = write(tmp_path, "a.csv", "a,b\n" + "1\n" * 30 + "1,2\n")
    result = profile(path, fmt="csv", max_malformed_examples=5)
    assert result["malformed_rows"]["count"] == 30
    assert [e["line"] for e in result["malformed_rows"]["examples"]] == [2, 3, 4, 5, 6]


# --- schema contract --------------------------------------------------------------------------


TYPED_CSV = (
    "id,price,qty,name,flag,when,note\n"
    "1,1.5,3,a,true,2024-01-02,x\n"
    "2,2,,b,false,2024-01-03T10:00:00Z,\n"
    "3,3.25,5,c,true,2024-02-01,y\n"
)


def test_schema_check_reports_missing_extra_and_mismatched_columns(tmp_path):
    contract = SchemaContract.from_dict(
        {
            "columns": {
                "id": "integer",
                "price": "integer",  # has 1.5: mismatch
                "qty": "integer",  # has a null: still integer
                "name": "string",
                "flag": "boolean",
                "when": "datetime",
                "sku": "string",  # missing
            },
            "key": "id",
        }
    )
    result = profile(write(tmp_path, "a.csv", TYPED_CSV), fmt="csv", contract=contract)
    assert result["schema"] == {
        "ok": False,
        "missing": ["sku"],
        "extra": ["note"],
        "type_mismatches": [{"column": "price", "expected": "integer", "found": "float"}],
    }
    assert result["key"] == {"column": "id", "duplicates": 0, "duplicate_rate": 0.0}
    when = column(result, "when")
    assert when["dtype"] == "datetime" and when["max"] == "2024-02-01T00:00:00+00:00"


def test_schema_check_passes_with_compatible_types(tmp_path):
    contract = SchemaContract.from_dict(
        {"columns": {"id": "float", "price": "float", "qty": "integer", "note": "string"}}
    )
    result = profile(write(tmp_path, "a.csv", TYPED_CSV), fmt="csv", contract=contract)
    assert result["schema"]["ok"] and result["schema"]["type_mismatches"] == []
    assert result["key"] is None


def test_type_mismatch_found_in_a_later_chunk(tmp_path):
    path = write(
        tmp_path, "a.csv", "id,qty\n" + "".join(f"{n},{n}\n" for n in range(9)) + "9,ten\n"
    )
    contract = SchemaContract.from_dict({"columns": {"id": "integer", "qty": "integer"}})
    result = profile(path, fmt="csv", contract=contract, chunk_rows=3)
    assert result["schema"]["type_mismatches"] == [
        {"column": "qty", "expected": "integer", "found": "string"}
    ]
    assert column(result, "qty")["min"] is None  # no numeric stats for a text column


def test_schema_contract_from_dict_validates():
    assert SchemaContract.from_dict(None) is None
    contract = SchemaContract.from_dict({"columns": {"id": "integer"}, "key": "id"})
    assert contract == SchemaContract(columns={"id": "integer"}, key="id")
    assert SchemaContract.from_dict(contract.to_dict()) == contract
    bad = [
        {"columns": {"id": "int"}},
        {"columns": {}},
        {"columns": {"id": "integer"}, "key": "sku"},
        {"columns": {"id": "integer"}, "keys": "id"},
        ["id"],
    ]
    for data in bad:
        with pytest.raises(ValueError):
            SchemaContract.from_dict(data)
    with pytest.raises(ValueError, match="string, integer"):
        SchemaContract.from_dict({"columns": {"id": "number"}})
    assert set(COLUMN_TYPES) == {"string", "integer", "float", "boolean", "datetime"}
    assert "chorus-products" in FORMATS


# --- statistics across chunks ---------------------------------------------------------------


def test_duplicates_are_found_across_chunk_boundaries(tmp_path):
    ids = [1, 2, 3, 1, 4, 2, 5, 1, None, None]
    text = "id,v\n" + "".join(f"{'' if i is None else i},{n}\n" for n, i in enumerate(ids))
    contract = SchemaContract.from_dict({"columns": {"id": "integer"}, "key": "id"})
    for chunk_rows in (1, 3, 100):
        result = profile(
            write(tmp_path, "a.csv", text), fmt="csv", contract=contract, chunk_rows=chunk_rows
        )
        # 8 non-null keys, 5 distinct; nulls are reported as nulls, not as duplicates
        assert result["key"] == {"column": "id", "duplicates": 3, "duplicate_rate": 0.3}


def test_duplicates_match_when_a_key_changes_type_between_chunks(tmp_path):
    text = "id\n7\n8\nA9\n7\n"
    contract = SchemaContract.from_dict({"columns": {"id": "string"}, "key": "id"})
    result = profile(write(tmp_path, "a.csv", text), fmt="csv", contract=contract, chunk_rows=2)
    assert result["key"]["duplicates"] == 1


def _random_catalog(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame(
        {
            "count": pd.Series(rng.integers(-50, 50, rows), dtype="Int64").where(
                rng.random(rows) > 0.1
            ),
            "price": pd.Series(rng.normal(20, 5, rows).round(3)).where(rng.random(rows) > 0.2),
            "brand": pd.Series(rng.choice(["acme", "zeta", "nova", "orb"], rows)).where(
                rng.random(rows) > 0.05
            ),
            "title": [f"title {n}" for n in range(rows)],
            "flag": rng.random(rows) > 0.5,
        }
    )


def test_stats_combined_across_chunks_equal_whole_frame_stats(tmp_path):
    frame = _random_catalog(503)
    path = tmp_path / "a.csv"
    frame.to_csv(path, index=False)
    chunked = profile(path, fmt="csv", chunk_rows=37, top_k=3, low_cardinality=10)
    whole = profile(path, fmt="csv", chunk_rows=10_000, top_k=3, low_cardinality=10)
    assert chunked["rows"] == whole["rows"] == 503
    for mine, theirs in zip(chunked["columns"], whole["columns"], strict=True):
        assert mine == {**theirs, "mean": pytest.approx(theirs["mean"])}
    for name in ("count", "price"):
        stats = column(chunked, name)
        assert stats["null_count"] == frame[name].isna().sum()
        assert stats["min"] == pytest.approx(frame[name].min())
        assert stats["max"] == pytest.approx(frame[name].max())
        assert stats["mean"] == pytest.approx(frame[name].mean())
    assert column(chunked, "count")["dtype"] == "integer"
    brand = column(chunked, "brand")
    assert brand["top_values"] == [
        [v, int(c)] for v, c in frame["brand"].value_counts().head(3).items()
    ]
    assert brand["distinct"] == 4 and brand["null_rate"] == pytest.approx(
        frame["brand"].isna().mean()
    )
    assert column(chunked, "title")["top_values"] is None  # 503 distinct > low_cardinality
    assert column(chunked, "flag")["dtype"] == "boolean"


def test_top_values_stop_once_a_column_exceeds_low_cardinality_across_chunks(tmp_path):
    path = write(tmp_path, "a.csv", "v\n" + "".join(f"{n}\n" for n in range(12)))
    result = profile(path, fmt="csv", chunk_rows=4, low_cardinality=10)
    assert column(result, "v")["top_values"] is None and column(result, "v")["distinct"] is None
    result = profile(path, fmt="csv", chunk_rows=4, low_cardinality=12)
    assert column(result, "v")["distinct"] == 12 and len(column(result, "v")["top_values"]) == 10


def test_columns_missing_from_some_chunks_count_as_null(tmp_path):
    text = "\n".join(['{"a": 1}', '{"a": 2}', '{"a": 3, "b": "x"}', '{"a": 4}']) + "\n"
    result = profile(write(tmp_path, "a.jsonl", text), fmt="jsonl", chunk_rows=2)
    b = column(result, "b")
    assert b["null_count"] == 3 and b["null_rate"] == 0.75


def test_parquet_written_by_pyarrow_with_row_groups(tmp_path):
    table = pa.table({"id": list(range(100)), "name": [f"n{n % 7}" for n in range(100)]})
    path = tmp_path / "a.parquet"
    pq.write_table(table, path, row_group_size=30)
    result = profile(path, fmt="parquet", chunk_rows=25)
    assert result["rows"] == 100 and column(result, "name")["distinct"] == 7
