"""The pipeline end to end on the real Chorus/Icecat set: import → approvals → full retrain
(clean → pairs → fine-tune → index → evaluate) with all-MiniLM-L6-v2, in a scratch database.

    .venv/bin/python bench/chorus_end_to_end.py [--data ../shared/data/chorus-icecat]
        [--epochs 1] [--max-steps N] [--batch-size 32] [--max-length 64] [--keep DIR]

Prints JSON and a table: held-out nDCG@10 / Recall@100 / MRR@10 for zero-shot vs fine-tuned,
and the wall time of each step. The run executes in this process through the same service the
worker calls (recsys.services.run_execute), after the same approvals.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared/data/chorus-icecat"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--held-out", type=float, default=0.3)
    parser.add_argument("--keep", default="", help="Keep the scratch folder here.")
    args = parser.parse_args()
    scratch = args.keep or tempfile.mkdtemp(prefix="steward-chorus-")
    os.environ.update(
        STEWARD_VAR_DIR=scratch,
        SECRET_KEY="bench",  # noqa: S106 - a throwaway key for a scratch database
        DEBUG="0",
        HF_HUB_OFFLINE="1",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    os.environ.pop("DATABASE_URL", None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("seed_demo", "--quiet-logins", "--i-know-this-is-a-demo")
    result = run(args)
    print(json.dumps(result, indent=2))
    print_table(result)


def run(args) -> dict:
    from django.core.management import call_command

    from governance.models import ApprovalRequest, DatasetVersion
    from governance.services import approval_decide
    from recsys.models import PipelineRun
    from recsys.services import run_execute, run_request

    data = Path(args.data)
    started = time.monotonic()
    call_command(
        "import_dataset",
        str(data),
        asset="product-catalog",
        format="chorus-products",
        username="catalog.engineer",
        profile_now=True,
    )
    call_command(
        "import_dataset",
        str(data / "judgments.csv"),
        asset="relevance-labels",
        format="chorus-judgments",
        username="relevance.engineer",
        profile_now=True,
    )
    imported = time.monotonic() - started
    from django.contrib.auth import get_user_model

    users = {u.username: u for u in get_user_model().objects.all()}
    catalog = DatasetVersion.objects.filter(asset__slug="product-catalog").latest("number")
    labels = DatasetVersion.objects.filter(asset__slug="relevance-labels").latest("number")
    for version, steward in ((catalog, "catalog.steward"), (labels, "relevance.steward")):
        request = ApprovalRequest.objects.get(kind="dataset_version", subject_id=version.pk)
        approval_decide(
            actor=users[steward], request=request, verdict="approve", comment="real data"
        )
    from recsys.models import Pipeline

    pipeline = Pipeline.objects.get(slug="product-search")
    params = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "held_out_fraction": args.held_out,
    }
    if args.max_steps:
        params["max_steps"] = args.max_steps
    run_ = run_request(
        actor=users["ops.ops"],
        pipeline=pipeline,
        kind="full_retrain",
        inputs=[catalog, labels],
        parameters=params,
        reason="Chorus end-to-end benchmark",
    )
    request = ApprovalRequest.objects.get(kind="pipeline_run", subject_id=run_.pk)
    for approver in ("catalog.steward", "relevance.steward", "ops.lead"):
        approval_decide(actor=users[approver], request=request, verdict="approve")
    run_execute(run_id=run_.pk, attempt=1)
    run_ = PipelineRun.objects.get(pk=run_.pk)
    return {
        "state": run_.state,
        "error": run_.error,
        "import_seconds": round(imported, 1),
        "timings": run_.timings,
        "parameters": run_.parameters,
        "metrics": run_.outputs.get("metrics"),
        "clean": {k: run_.outputs.get("clean_report", {}).get(k) for k in ("rows_in", "rows_out")},
        "pairs": {
            k: run_.outputs.get("pairs_report", {}).get(k)
            for k in ("train_pairs", "heldout_query_count", "heldout_judgments")
        },
    }


def print_table(result: dict) -> None:
    print(f"\nrun: {result['state']} {result['error']}")
    print(f"{'step':<12}{'seconds':>10}")
    for step, seconds in (result.get("timings") or {}).items():
        print(f"{step:<12}{seconds:>10}")
    print(f"\n{'model':<12}{'nDCG@10':>10}{'Recall@100':>12}{'MRR@10':>10}{'queries':>9}")
    for name, m in (result.get("metrics") or {}).items():
        if not isinstance(m, dict) or "ndcg@10" not in m:  # "fusion", "default_mode"
            continue
        print(
            f"{name:<12}{m['ndcg@10']:>10.4f}{m['recall@100']:>12.4f}{m['mrr@10']:>10.4f}"
            f"{m['n_queries']:>9}"
        )


if __name__ == "__main__":
    main()
