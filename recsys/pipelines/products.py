"""The product table an index serves: display fields and filterable attributes per position.

Written into the index artifact next to the vectors (row i = vector i), so that a search answer
shows title, brand, price and attributes of exactly the catalog version the index was built
from, and filters (brand, price range, any categorical attribute) run without the database.

Filterable attributes are found, not configured: ``category``-like columns of the cleaned catalog
and the fields of a JSON ``attributes`` column (the Chorus/Icecat layout) whose values are short
strings with few distinct values. No Django imports.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

PRODUCTS_FILE = "products.parquet"
EVENTS_FILE = "events.parquet"
DISPLAY_COLUMNS = ("id", "title", "brand", "price")
NOT_ATTRIBUTES = {"id", "title", "brand", "price", "description", "ean", "attributes", "url"}
MAX_DISTINCT = 200
MAX_VALUE_CHARS = 80
MIN_COVERAGE = 0.01
MAX_ATTRIBUTES = 20
RESERVED_FILTERS = ("brand", "price_min", "price_max")


class FilterError(ValueError):
    """A filter the index does not know, or a value it cannot use."""


def _categorical(series: pd.Series, n_rows: int) -> bool:
    values = series.dropna()
    if values.empty or len(values) < MIN_COVERAGE * n_rows:
        return False
    if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
        return False
    text = values.astype(str)
    distinct = text.nunique()
    return 1 < distinct <= min(MAX_DISTINCT, max(2, n_rows // 2)) and (
        text.str.len().max() <= MAX_VALUE_CHARS
    )


def _attribute_frame(catalog: pd.DataFrame) -> pd.DataFrame:
    """The JSON ``attributes`` column expanded into one column per field (``attr_`` prefixes
    dropped), strings only, for the at most MAX_ATTRIBUTES fields present on at least
    MIN_COVERAGE of the rows (a real catalog has thousands of sparse fields: one column each
    would not fit in memory)."""
    from collections import Counter

    if "attributes" not in catalog.columns:
        return pd.DataFrame(index=catalog.index)
    parsed = [
        json.loads(value) if isinstance(value, str) and value.startswith("{") else {}
        for value in catalog["attributes"]
    ]
    counts = Counter(k for record in parsed for k, v in record.items() if isinstance(v, str))
    wanted = [key for key, n in counts.most_common() if n >= max(1, MIN_COVERAGE * len(parsed))][
        : MAX_ATTRIBUTES * 2
    ]  # twice the cap: some turn out not to be categorical
    columns = {}
    for key in wanted:
        name = str(key).removeprefix("attr_t_").removeprefix("attr_")
        if name not in columns:
            values = [record.get(key) for record in parsed]
            columns[name] = [v if isinstance(v, str) else None for v in values]
    return pd.DataFrame(columns, index=catalog.index)


def product_table(catalog: pd.DataFrame, ids: Sequence[str]) -> pd.DataFrame:
    """Display fields and filterable attributes of the products ``ids`` (in that order: row i
    is the index's position i). Product ids of the catalog are matched as strings."""
    frame = catalog.copy()
    frame["id"] = frame["id"].astype(str).str.strip()
    frame = frame.drop_duplicates("id").set_index("id", drop=False)
    frame = frame.reindex([str(i) for i in ids])
    out = pd.DataFrame({"id": [str(i) for i in ids]})
    out["title"] = frame["title"].astype("string").fillna("").to_numpy()
    brand = frame["brand"] if "brand" in frame.columns else pd.Series(None, index=frame.index)
    out["brand"] = brand.astype("string").to_numpy()
    price = frame["price"] if "price" in frame.columns else pd.Series(np.nan, index=frame.index)
    out["price"] = pd.to_numeric(price, errors="coerce").astype("float64").to_numpy()
    candidates = [c for c in frame.columns if c not in NOT_ATTRIBUTES]
    attributes = pd.concat([frame[candidates], _attribute_frame(frame)], axis=1)
    attributes = attributes.loc[:, ~attributes.columns.duplicated()]
    n = len(out)
    kept = [c for c in attributes.columns if _categorical(attributes[c], n)][:MAX_ATTRIBUTES]
    for column in kept:
        out[f"attr:{column}"] = attributes[column].astype("string").to_numpy()
    return out


def attribute_names(table: pd.DataFrame) -> list[str]:
    """Filterable attribute names of a product table (besides brand and price)."""
    return [c.removeprefix("attr:") for c in table.columns if c.startswith("attr:")]


def known_filters(table: pd.DataFrame) -> list[str]:
    return [*RESERVED_FILTERS, *attribute_names(table)]


def _price(name: str, value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise FilterError(f"Filter {name} must be a number, got {value!r}.") from None
    if not np.isfinite(number) or number < 0:
        raise FilterError(f"Filter {name} must be a non-negative number, got {value!r}.")
    return number


def folded_columns(table: pd.DataFrame) -> dict[str, np.ndarray]:
    """Case-folded values of every text filter (brand and attributes), computed once per
    loaded index so that a filtered query does not fold a whole column."""
    names = ["brand", *(f"attr:{n}" for n in attribute_names(table))]
    return {
        name: table[name].astype("string").str.casefold().fillna("").to_numpy(dtype=object)
        for name in names
    }


def filter_mask(
    table: pd.DataFrame, filters: Mapping[str, str], *, folded: dict | None = None
) -> np.ndarray | None:
    """Boolean mask of the products matching every filter (text filters compare case-
    insensitively; a comma separates alternatives), or None when there is no filter. Unknown
    names (even with an empty value) and unusable values raise FilterError naming the known
    filters. ``folded`` is ``folded_columns(table)`` when the caller keeps it."""
    known = known_filters(table)
    unknown = sorted(set(filters) - set(known))
    if unknown:
        raise FilterError(
            f"Unknown filter(s): {', '.join(unknown)}. This index filters on: {', '.join(known)}."
        )
    filters = {k: v for k, v in filters.items() if v not in (None, "")}
    if not filters:
        return None
    mask = np.ones(len(table), dtype=bool)
    for name, value in filters.items():
        if name == "price_min":
            mask &= (table["price"] >= _price(name, value)).fillna(False).to_numpy(bool)
        elif name == "price_max":
            mask &= (table["price"] <= _price(name, value)).fillna(False).to_numpy(bool)
        else:
            column = "brand" if name == "brand" else f"attr:{name}"
            values = (folded or {}).get(column)
            if values is None:
                values = folded_columns(table)[column]
            wanted = [part.strip().casefold() for part in str(value).split(",") if part.strip()]
            mask &= np.isin(values, wanted)
    bounds = [_price(n, filters[n]) for n in ("price_min", "price_max") if n in filters]
    if len(bounds) == 2 and bounds[0] > bounds[1]:
        raise FilterError("Filter price_min is above price_max.")
    return mask


def facet_values(table: pd.DataFrame, name: str, limit: int = 50) -> list[str]:
    """The most common values of a text filter (for the console's choices)."""
    column = table["brand"] if name == "brand" else table[f"attr:{name}"]
    return column.dropna().value_counts().head(limit).index.astype(str).tolist()


def save_table(table: pd.DataFrame, folder: str) -> str:
    table.to_parquet(os.path.join(folder, PRODUCTS_FILE), index=False)
    return PRODUCTS_FILE


def load_table(folder: str) -> pd.DataFrame:
    return pd.read_parquet(os.path.join(folder, PRODUCTS_FILE))


def event_table(events: pd.DataFrame | None) -> pd.DataFrame:
    """Behaviour events as (user_id, product_id, event) strings and a UTC ``ts`` (epoch seconds
    or ISO text in): what per-user recommendations of an index read. Rows without a user,
    product or time are dropped."""
    columns = ["user_id", "product_id", "event", "ts"]
    if events is None or events.empty or not set(columns) <= set(events.columns):
        return pd.DataFrame({c: pd.Series(dtype="string") for c in columns[:3]}).assign(
            ts=pd.Series(dtype="datetime64[ns, UTC]")
        )
    frame = events[columns].copy()
    for column in columns[:3]:
        frame[column] = frame[column].astype("string").str.strip()
    frame["event"] = frame["event"].str.casefold()
    if pd.api.types.is_numeric_dtype(frame["ts"]):
        frame["ts"] = pd.to_datetime(frame["ts"], unit="s", utc=True, errors="coerce")
    else:
        frame["ts"] = pd.to_datetime(frame["ts"], utc=True, errors="coerce", format="mixed")
    return frame.dropna(subset=["user_id", "product_id", "ts"]).reset_index(drop=True)


def save_events(events: pd.DataFrame, folder: str) -> str:
    events.to_parquet(os.path.join(folder, EVENTS_FILE), index=False)
    return EVENTS_FILE


def load_events(folder: str) -> pd.DataFrame | None:
    path = os.path.join(folder, EVENTS_FILE)
    return pd.read_parquet(path) if os.path.exists(path) else None
