"""datafiles: detecting and reading every format, and what reading reports about bad input
(pure tests on small files in tmp_path, no database). The statistics computed over what is read
are tested in tests/governance/test_profiling.py."""

from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest

from datafiles import (
    CHORUS_PRODUCT_COLUMNS,
    DatasetReadError,
    ReadReport,
    detect_format,
    iter_frames,
    read_chorus_products,
)
from tests.datafiles.files import (
    CHORUS_RECORDS,
    CSV,
    PDF,
    PNG,
    gzipped_with_name,
    parquet_bytes,
    read_error,
    rows_read,
    write,
    zipped,
)

# --- detect_format --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "head", "expected"),
    [
        ("items.csv", CSV.encode(), "csv"),
        ("items.TSV", b"id\tname\n1\tx\n", "tsv"),
        ("events.jsonl", b'{"a": 1}\n', "jsonl"),
        ("events.ndjson", b'{"a": 1}\n', "jsonl"),
        ("items.json", b'[{"a": 1}]', "json"),
        ("item.json", b'{"a": 1}', "json"),
        ("items.parquet", b"PAR1\x15\x04", "parquet"),
        ("items.csv.gz", gzip.compress(CSV.encode()), "csv"),
        ("items.json.zip", zipped({"1.json": '[{"id": "1"}]'}), "json"),
        ("bundle.zip", zipped({"events.jsonl": '{"a": 1}\n'}), "jsonl"),
        ("empty.csv", b"", "csv"),
        ("upload.gz", gzipped_with_name("items.tsv", b"id\tname\n"), "tsv"),
    ],
)
def test_detect_format_by_extension_and_content(name, head, expected):
    assert detect_format(name, head) == expected


@pytest.mark.parametrize(
    ("name", "head", "says", "looks_like"),
    [
        ("items.csv", PNG, "CSV", "PNG image"),
        ("items.csv", PDF, "CSV", "PDF document"),
        ("items.csv", zipped({"a.csv": CSV}), "CSV", "zip archive"),
        ("items.csv", parquet_bytes(pd.DataFrame({"a": [1]}))[:64], "CSV", "Parquet"),
        ("items.csv", b'[{"id": 1}]', "CSV", "JSON array"),
        ("items.csv", zipped({"[Content_Types].xml": "<x/>"}), "CSV", "Excel workbook"),
        ("items.json", CSV.encode(), "JSON", "delimited text"),
        ("items.jsonl", b'[{"id": 1}]', "JSON Lines", "JSON array"),
        ("items.parquet", CSV.encode(), "Parquet", "delimited text"),
        ("items.csv.gz", CSV.encode(), "CSV compressed with gzip", "delimited text"),
        ("items.csv.gz", gzip.compress(PNG), "CSV", "PNG image"),
        ("items.csv.zip", zipped({"a.csv": '{"a": 1}\n'}), "CSV", "JSON objects"),
    ],
)
def test_detect_format_refuses_content_that_contradicts_the_name(name, head, says, looks_like):
    with pytest.raises(DatasetReadError) as caught:
        detect_format(name, head)
    assert caught.value.code == "wrong_content"
    assert says in caught.value.message and looks_like in caught.value.message


@pytest.mark.parametrize("name", ["report.xlsx", "notes.txt", "archive.tar", "noext", "x.zip"])
def test_detect_format_refuses_unknown_extensions(name):
    head = zipped({"README": "hello"}) if name.endswith(".zip") else b"a,b\n"
    with pytest.raises(DatasetReadError) as caught:
        detect_format(name, head)
    assert caught.value.code == "unsupported_format"
    assert ".csv" in caught.value.message and ".parquet" in caught.value.message


def test_iter_frames_yields_chunks_and_fills_the_report(tmp_path):
    path = write(tmp_path, "a.csv", "id,v\n" + "".join(f"{n},{n}\n" for n in range(10)) + "x\n")
    report = ReadReport()
    frames = list(iter_frames(path, fmt="csv", chunk_rows=4, report=report))
    assert [len(f) for f in frames] == [4, 4, 2]
    assert report.rows == 10 and report.malformed_count == 1
    assert str(frames[0]["id"].dtype) == "Int64"


# --- Chorus formats ---------------------------------------------------------------------------


def test_chorus_products_are_normalised_to_catalog_columns(tmp_path):
    archive = zipped(
        {"1.json": json.dumps(CHORUS_RECORDS[:2]), "2.json": json.dumps(CHORUS_RECORDS[2:])}
    )
    path = write(tmp_path, "1.json.zip", archive)
    frame = pd.concat(list(read_chorus_products(path)), ignore_index=True)
    assert tuple(frame.columns) == CHORUS_PRODUCT_COLUMNS
    first = frame.iloc[0]
    assert (first["id"], first["brand"], first["price"]) == ("1", "Xerox", 49.95)
    assert first["ean"] == "0095205603217,123" and first["description"] == "Toner"
    attributes = json.loads(first["attributes"])
    assert attributes == {"attr_n_quantity_per_pack": 6.0, "attr_t_type": "Original"}
    assert pd.isna(frame.iloc[1]["attributes"]) and pd.isna(frame.iloc[2]["price"])


def test_chorus_formats_refuse_other_data(tmp_path):
    path = write(tmp_path, "a.json", json.dumps([{"sku": 1}, {"sku": 2}]))
    assert read_error(path, fmt="chorus-products").code == "wrong_content"
    path = write(tmp_path, "j.csv", "q,product,grade\na,1,3\n")
    error = read_error(path, fmt="chorus-judgments")
    assert error.code == "wrong_content" and "product_id" in error.message


def test_chorus_judgments(tmp_path):
    path = write(tmp_path, "j.csv", "query,product_id,grade\ngps watch,77382335,3\ntv,1,0\n")
    frame = next(iter_frames(path, fmt="chorus-judgments"))
    assert frame["product_id"].tolist() == ["77382335", "1"]


# --- bad input ----------------------------------------------------------------------------------


def test_invalid_utf8_is_replaced_and_counted(tmp_path):
    path = write(tmp_path, "a.csv", b"id,name\n1,caf\xe9\n2,\xff\xfeok\n3,fine\n")
    report = ReadReport()
    frame = next(iter_frames(path, fmt="csv", report=report))
    assert report.rows == 3
    assert (report.encoding, report.replaced_characters) == ("utf-8", 3)
    assert frame["name"].tolist() == ["caf\ufffd", "\ufffd\ufffdok", "fine"]


@pytest.mark.parametrize(
    ("data", "fmt", "phrase"),
    [
        (b"", "csv", "0 bytes"),
        (b"  \n\n\t\n", "csv", "no data rows"),
        (b"id,name\n", "csv", "header (id, name)"),
        (b"id,name\n\n\n", "csv", "header (id, name)"),
        (b"[]", "json", "no data rows"),
        (b" [ \n ] ", "json", "no data rows"),
        (b"\n\n", "jsonl", "no data rows"),
        (gzip.compress(b""), "csv", "no data rows"),
        (zipped({}), "csv", "no data rows"),
        (parquet_bytes(pd.DataFrame({"a": pd.Series([], dtype="int64")})), "parquet", "(a)"),
    ],
)
def test_empty_files(tmp_path, data, fmt, phrase):
    error = read_error(write(tmp_path, "empty.bin", data), fmt=fmt)
    assert error.code == "empty" and phrase in error.message


def test_truncated_gzip(tmp_path):
    data = gzip.compress(("id,name\n" + "".join(f"{n},n{n}\n" for n in range(5000))).encode())
    error = read_error(write(tmp_path, "a.csv.gz", data[: len(data) // 2]), fmt="csv")
    assert error.code == "truncated" and "gzip" in error.message


def test_truncated_zip(tmp_path):
    data = zipped({"a.csv": "id\n" + "\n".join(map(str, range(5000)))})
    error = read_error(write(tmp_path, "a.csv.zip", data[: len(data) // 2]), fmt="csv")
    assert error.code == "truncated" and "zip" in error.message


def test_truncated_json_array(tmp_path):
    text = json.dumps([{"id": n, "name": f"n{n}"} for n in range(100)], indent=1)
    for cut in (len(text) // 2, len(text) - 1, text.index('"name"', 2000) + 3):
        error = read_error(write(tmp_path, "a.json", text[:cut]), fmt="json")
        assert error.code == "truncated", error.message
        assert error.line is not None


def test_truncated_parquet(tmp_path):
    data = parquet_bytes(pd.DataFrame({"a": range(1000)}))
    error = read_error(write(tmp_path, "a.parquet", data[: len(data) - 20]), fmt="parquet")
    assert error.code == "truncated" and "Parquet" in error.message


def test_json_array_syntax_error_is_malformed_with_its_line(tmp_path):
    text = '[\n {"id": 1},\n {"id": 2,, "x": 1},\n {"id": 3}\n]\n' + " " * 200
    error = read_error(write(tmp_path, "a.json", text), fmt="json")
    assert (error.code, error.line) == ("malformed", 3)
    error = read_error(write(tmp_path, "b.json", '[{"id": 1},]'), fmt="json")
    assert error.code == "malformed"


@pytest.mark.parametrize("chunk_rows", [1, 3, 100])
def test_a_bad_record_spanning_lines_is_left_out_whole(tmp_path, chunk_rows):
    text = 'id,note\n1,a\n2,"two\nlines",extra\n3,c\n4,"d\ne"\n5,f\n'
    path = write(tmp_path, "a.csv", text)
    report = ReadReport()
    frame = pd.concat(list(iter_frames(path, fmt="csv", chunk_rows=chunk_rows, report=report)))
    assert [e["line"] for e in report.malformed_examples] == [3]
    assert frame["id"].tolist() == [1, 3, 4, 5]
    assert frame["note"].tolist() == ["a", "c", "d\ne", "f"]


def test_every_row_malformed(tmp_path):
    error = read_error(write(tmp_path, "a.csv", "a,b,c\n1,2\n3,4\n"), fmt="csv")
    assert (error.code, error.line) == ("malformed", 2)
    assert "2 data rows" in error.message


def test_semicolon_csv_with_a_comma_header_hints_at_the_delimiter(tmp_path):
    error = read_error(write(tmp_path, "a.csv", "a;b;c\n1,2\n3,4\n"), fmt="csv")
    assert error.code == "malformed" and "delimiter" in error.message


def test_malformed_json_lines(tmp_path):
    text = '{"id": 1}\n{"id": 2\n\n[1, 2]\n{"id": 3}\n'
    report = ReadReport()
    assert rows_read(write(tmp_path, "a.jsonl", text), fmt="jsonl", report=report) == 2
    lines = [(e["line"], e["error"].split(":")[0]) for e in report.malformed_examples]
    assert lines == [(2, "invalid JSON"), (4, "expected a JSON object, found a list")]
    error = read_error(write(tmp_path, "b.jsonl", '{bad\n{"id": \n'), fmt="jsonl")
    assert error.code == "malformed" and error.line == 1


def test_wrong_content_is_refused_when_reading(tmp_path):
    assert read_error(write(tmp_path, "a.csv", PNG), fmt="csv").code == "wrong_content"
    assert read_error(write(tmp_path, "a.json", CSV), fmt="json").code == "wrong_content"
    error = read_error(write(tmp_path, "a.csv.zip", zipped({"x.pdf": PDF})), fmt="csv")
    assert error.code == "wrong_content" and "x.pdf" in error.message


def test_unsupported_format_when_reading(tmp_path):
    error = read_error(write(tmp_path, "a.xlsx", CSV), fmt="xlsx")
    assert error.code == "unsupported_format" and "parquet" in error.message
