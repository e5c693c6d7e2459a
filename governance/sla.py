"""SLA checks of one profile against an asset's SLA: plain functions, no writes."""

from __future__ import annotations

from datetime import datetime

from governance.choices import SlaRule


def _check(rule: str, ok: bool, detail: str, value=None, threshold=None, column=None) -> dict:
    row = {"rule": rule, "ok": ok, "detail": detail, "value": value, "threshold": threshold}
    if column is not None:
        row["column"] = column
    return row


def version_sla_results(asset, profile: dict) -> dict:
    """Volume, null rate per column, duplicate rate and schema contract of one profile."""
    sla = getattr(asset, "sla", None)
    checks: list[dict] = []
    rows = profile.get("rows", 0)
    if sla is not None and sla.min_rows is not None:
        checks.append(
            _check(
                SlaRule.VOLUME,
                rows >= sla.min_rows,
                f"{rows:,} rows (minimum {sla.min_rows:,})",
                rows,
                sla.min_rows,
            )
        )
    if sla is not None:
        checks.extend(_null_checks(sla, profile))
    key = profile.get("key")
    if sla is not None and sla.max_duplicate_rate is not None and key:
        rate = key.get("duplicate_rate", 0.0)
        checks.append(
            _check(
                SlaRule.DUPLICATES,
                rate <= sla.max_duplicate_rate,
                f"{rate:.2%} duplicate {key['column']} values "
                f"(maximum {sla.max_duplicate_rate:.2%})",
                rate,
                sla.max_duplicate_rate,
            )
        )
    schema = profile.get("schema")
    if schema is not None and (sla is None or sla.enforce_schema):
        problems = _schema_problems(schema)
        checks.append(
            _check(
                SlaRule.SCHEMA,
                schema.get("ok", False),
                "; ".join(problems) or "matches the schema contract",
            )
        )
    return {"ok": all(c["ok"] for c in checks), "checks": checks}


def _null_checks(sla, profile: dict) -> list[dict]:
    overrides = sla.column_max_null_rates or {}
    checks = []
    for column in profile.get("columns", []):
        name = column["name"]
        limit = overrides.get(name, sla.max_null_rate)
        if limit is None:
            continue
        rate = column.get("null_rate", 0.0)
        checks.append(
            _check(
                SlaRule.NULL_RATE,
                rate <= limit,
                f"{name}: {rate:.2%} nulls (maximum {limit:.2%})",
                rate,
                limit,
                name,
            )
        )
    return checks


def _schema_problems(schema: dict) -> list[str]:
    problems = []
    if schema.get("missing"):
        problems.append("missing columns: " + ", ".join(schema["missing"]))
    for mismatch in schema.get("type_mismatches", []):
        problems.append(
            f"{mismatch['column']} is {mismatch['found']}, expected {mismatch['expected']}"
        )
    return problems


def freshness_check(sla, newest_approved_at: datetime | None, now: datetime) -> dict | None:
    """Age of the newest approved version against the freshness SLA (None: not checked)."""
    if sla is None or sla.freshness_hours is None:
        return None
    if newest_approved_at is None:
        return _check(
            SlaRule.FRESHNESS, False, "no approved version yet", None, sla.freshness_hours
        )
    hours = (now - newest_approved_at).total_seconds() / 3600
    return _check(
        SlaRule.FRESHNESS,
        hours <= sla.freshness_hours,
        f"newest approved version is {hours:.1f} h old (maximum {sla.freshness_hours} h)",
        round(hours, 2),
        sla.freshness_hours,
    )
