"""Load test of GET /api/v1/search on loopback: gunicorn, a 200k-product HNSW index, wrk.

    STEWARD_VAR_DIR=/tmp/bench-var .venv/bin/python bench/search_load.py [--items 200000]
        [--concurrency 1,8,32] [--duration 20] [--modes dense] [--workers 2] [--threads 1]
        [--query-pool 40000] [--recall-queries 500] [--build-threads 1] [--rebuild]

1. Catalog and index (cached under $STEWARD_VAR_DIR/bench/search-load/, reused by later runs):
   the 19,406 real Chorus/Icecat products plus synthetic variants of them up to ``--items``
   (default 200,000). A variant copies a random real product, gives it another real brand of
   the set, re-draws every model-number-like token (any word with a digit) in its title and
   description, moves its price by up to ±25 % and gets a fresh id and EAN; (title, brand) stays
   unique. The Chorus ``attributes`` (JSON specification fields) are left out of the whole
   catalog: the product table expands them into one column per distinct key (5,354 in Chorus)
   for every row, about 2 GB and 40 s at 19k products and over 20 GB at 200k. The load test
   uses no filter, so only the attribute filters are lost. The catalog is indexed by
   ``recsys.pipelines.steps.build_catalog_index`` with all-MiniLM-L6-v2 (max_length 64): from
   200,000 items that is an HNSW index (efSearch tuned to recall@10 0.95 at build time), plus
   BM25 and the product table, as a real run builds.
2. A scratch SQLite database (always fresh, in $STEWARD_VAR_DIR/bench/search-load-db/):
   migrate, ``seed_demo`` (the demo organization, the admin user, the "product-search"
   pipeline), a DRF token for the admin, and the index registered as an IndexVersion of that
   pipeline and made active (the rows tests/recsys/search_setup.py makes), all through the ORM.
3. gunicorn (config.wsgi, ``--workers`` sync workers, 2 by default: one per core, since a
   query is CPU-bound; DEBUG=0, a throwaway SECRET_KEY) on 127.0.0.1 at a free port. Each
   worker loads the engine on its first request; the bench waits until every worker has
   logged its load. Before each mode's runs a ``--warmup`` second wrk pass (numbers dropped)
   warms that mode's code paths, and the server gets ``--pause`` idle seconds before every run,
   so that requests still queued from the previous run (wrk stops with them in flight) do not
   delay the next one.
4. wrk (bench/wrk_search.lua: Authorization: Token, queries rotated, each thread and each run
   on its own slice of the pool) for each concurrency and mode, ``--duration`` seconds each.
   The pool holds the 78 judged Chorus queries and then queries cut from real titles (2-5
   words), ``--query-pool`` distinct ones (40,000): far more than the engine's 2,048-entry
   embedding LRU, so almost every request encodes its query (the worst case).
   ``--query-pool 78`` rotates only the judged queries: the cache-hit case. Without wrk on
   PATH a small threaded Python load generator stands in (and the JSON says so).
5. Sequential requests with fresh queries give the server-side split (encode / search / total
   from the answer's timings) against the client's latency.
6. gunicorn is stopped (SIGTERM to its master). Then recall@10 of the served index (loaded
   as serving loads it, with its tuned efSearch) against exact search over the same vectors,
   on ``--recall-queries`` real query embeddings (the judged queries, then title queries), and
   for an HNSW index the same at efSearch 16-256 with the single-query search time.

Prints a JSON object and a table. Targets (reported, not asserted): single-client p50 ≤ 15 ms
and p99 ≤ 50 ms. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote_plus

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from bench_common import add_scratch_dir, check_scratch_dir, print_result  # noqa: E402
from chorus import chorus_dir, clean_text  # noqa: E402

LUA_SCRIPT = ROOT / "bench" / "wrk_search.lua"
CATALOG_VERSION = 2  # bump when the synthetic catalog changes: the cache key includes it
TARGETS_MS = {"p50": 15.0, "p99": 50.0}
_STARTED = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - _STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


# -- catalog -----------------------------------------------------------------------------------


def chorus_products():
    """The raw Chorus/Icecat catalog (19,406 rows, unique ids) as the importer reads it."""
    import pandas as pd

    from datafiles import read_chorus_products

    paths = sorted(chorus_dir().glob("*.json.zip"))
    if not paths:
        raise SystemExit(f"No *.json.zip under {chorus_dir()} (set STEWARD_CHORUS_DIR).")
    frames = [frame for path in paths for frame in read_chorus_products(path)]
    return pd.concat(frames, ignore_index=True)


def judged_queries() -> list[str]:
    import pandas as pd

    judgments = pd.read_csv(chorus_dir() / "judgments.csv", dtype=str)
    return list(dict.fromkeys(judgments["query"].str.strip()))


_MODEL_TOKEN = re.compile(r"\b(?=[\w-]*\d)[\w-]+\b")
_DIGITS, _UPPER, _LOWER = "0123456789", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz"


def _redraw(token: str, rng: random.Random) -> str:
    """Same shape, new characters: digits stay digits, letters keep their case."""
    out = []
    for c in token:
        if c.isdigit():
            out.append(rng.choice(_DIGITS))
        elif c.isalpha() and c.isascii():
            out.append(rng.choice(_UPPER if c.isupper() else _LOWER))
        else:
            out.append(c)
    return "".join(out)


def _variant(row: dict, brand: str, rng: random.Random) -> tuple[str, str | None]:
    """(title, description) of a variant of ``row`` sold under ``brand``."""
    mapping: dict[str, str] = {}

    def swap(match: re.Match) -> str:
        return mapping.setdefault(match.group(0), _redraw(match.group(0), rng))

    title = row["title"] if isinstance(row["title"], str) else ""
    description = row["description"]
    description = description if isinstance(description, str) else None
    old = row["brand"] if isinstance(row["brand"], str) else ""
    texts = [title, description or ""]
    if old:  # the brand is set aside first, so that "3M" or "C2G" is not re-drawn
        pattern = re.compile(re.escape(old), re.IGNORECASE)
        texts = [pattern.sub("\x00", text) for text in texts]
    title, text = (_MODEL_TOKEN.sub(swap, t).replace("\x00", brand) for t in texts)
    return title, (text if description else description)


def synthetic_catalog(real, items: int, seed: int):
    """The real products plus variants of them up to ``items`` rows (see the module doc)."""
    import pandas as pd

    rng = random.Random(seed)
    records = real.to_dict("records")
    brands = [b for b in real["brand"].tolist() if isinstance(b, str) and b]
    seen = {(str(r["title"]).casefold(), str(r["brand"]).casefold()) for r in records}
    rows = []
    for i in range(max(0, items - len(records))):
        source = rng.choice(records)
        for _attempt in range(5):
            brand = rng.choice(brands)
            title, description = _variant(source, brand, rng)
            key = (title.casefold(), brand.casefold())
            if key not in seen:
                break
        else:
            title = f"{title} ({i})"
            key = (title.casefold(), brand.casefold())
        seen.add(key)
        price = source["price"]
        if isinstance(price, float | int) and price == price:  # NaN-safe
            price = round(float(price) * rng.uniform(0.75, 1.25), 2)
        rows.append(
            {
                "id": f"syn{i:07d}",
                "title": title,
                "brand": brand,
                "price": price,
                "ean": f"2{i:012d}",
                "description": description,
            }
        )
    real = real.drop(columns=["attributes"])
    synthetic = pd.DataFrame(rows, columns=real.columns).astype(real.dtypes.to_dict())
    return pd.concat([real, synthetic], ignore_index=True).head(items)


def build_params(max_length: int) -> dict:
    from recsys.constants import RUN_PARAMETERS

    return {name: spec[1] for name, spec in RUN_PARAMETERS.items()} | {"max_length": max_length}


def ensure_index(args, cache: Path) -> tuple[Path, dict]:
    """The cached index artifact for these arguments, built first when missing."""
    key = f"chorus-plus-variants-v{CATALOG_VERSION}-n{args.items}-s{args.seed}-L{args.max_length}"
    folder = cache / key
    artifact, record = folder / "index", folder / "build.json"
    if args.rebuild:
        shutil.rmtree(folder, ignore_errors=True)
    if (artifact / "meta.json").exists() and record.exists():
        say(f"reusing the cached index {artifact}")
        return artifact, {**json.loads(record.read_text()), "cached": True}
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    _pin_threads(args.build_threads)
    from recsys.pipelines import steps
    from recsys.pipelines.encoding import default_model_path

    started = time.monotonic()
    real = chorus_products()
    catalog = synthetic_catalog(real, args.items, args.seed)
    catalog_s = time.monotonic() - started
    synthetic = len(catalog) - min(len(real), len(catalog))
    say(f"catalog: {len(catalog) - synthetic} Chorus + {synthetic} variants; indexing ...")
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    info = steps.build_catalog_index(
        catalog,
        default_model_path(),
        build_params(args.max_length),
        artifact,
        _progress_every(120, "encoding the catalog"),
    )
    build = {
        "items": info.n,
        "chorus_products": len(catalog) - synthetic,
        "synthetic_products": synthetic,
        "kind": info.kind,
        "params": info.params,
        "build_recall_at_10_tuning": info.recall_at_10,
        "catalog_seconds": round(catalog_s, 1),
        "build_seconds": round(time.monotonic() - started, 1),
        "build_threads": args.build_threads,
        "load_average_during_build": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "artifact_mb": round(_folder_bytes(artifact) / 2**20, 1),
    }
    record.write_text(json.dumps(build, indent=2))
    say(f"built {info.kind} index of {info.n} items in {build['build_seconds']} s")
    return artifact, {**build, "cached": False}


def _progress_every(seconds: float, what: str):
    """A should_stop callback that never stops and logs at most every ``seconds``."""
    state = {"last": time.monotonic(), "calls": 0}

    def should_stop() -> bool:
        state["calls"] += 1
        if time.monotonic() - state["last"] >= seconds:
            state["last"] = time.monotonic()
            say(f"{what}: batch {state['calls']}")
        return False

    return should_stop


def _pin_threads(threads: int) -> None:
    if threads > 0:
        import faiss
        import torch

        torch.set_num_threads(threads)
        faiss.omp_set_num_threads(threads)


def _folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# -- queries -----------------------------------------------------------------------------------


def query_pool(real, size: int, seed: int) -> list[str]:
    """The judged Chorus queries, then distinct 2-5 word cuts of real titles, ``size`` in all."""
    rng = random.Random(seed + 1)
    pool = judged_queries()[:size]
    seen = {q.casefold() for q in pool}
    words = [clean_text(t).split() for t in real["title"].dropna().tolist()]
    words = [w for w in words if len(w) >= 2]
    attempts = 0
    while len(pool) < size and attempts < 50 * size:
        attempts += 1
        title = rng.choice(words)
        n = rng.randint(2, 5)
        start = 0 if rng.random() < 0.6 else rng.randrange(max(1, len(title) - n + 1))
        query = " ".join(title[start : start + n]).strip(" ,;:-|()/").casefold()
        if len(query) >= 3 and query not in seen:
            seen.add(query)
            pool.append(query)
    return pool


# -- database ----------------------------------------------------------------------------------


def server_env(db_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        STEWARD_VAR_DIR=str(db_dir),
        SECRET_KEY="bench-search-load-not-secret",  # noqa: S106 - a scratch database
        DEBUG="0",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_VERBOSITY="error",
        LOG_LEVEL="INFO",
        # gunicorn on plain HTTP over loopback, measured without the API throttle
        SECURE_SSL_REDIRECT="0",
        SECURE_COOKIES="0",
        SECURE_HSTS_SECONDS="0",
        STEWARD_API_RATE_USER="",
        STEWARD_API_RATE_ANON="",
    )
    return env


def setup_database(env: dict, artifact: Path, max_length: int) -> tuple[str, int]:
    """Fresh scratch database with the index active; returns (admin token, index version id)."""
    os.environ.update(env)
    os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    from recsys.models import ActiveIndex, IndexVersion, ModelVersion, Pipeline, PipelineRun
    from recsys.pipelines.encoding import default_model_path
    from teams.demo import DEMO_ADMIN

    call_command("migrate", verbosity=0)
    call_command("seed_demo", "--quiet-logins", "--i-know-this-is-a-demo", stdout=io.StringIO())
    admin = get_user_model().objects.get(username=DEMO_ADMIN)
    token, _created = Token.objects.get_or_create(user=admin)
    pipeline = Pipeline.objects.get(slug="product-search")
    meta = json.loads((artifact / "meta.json").read_text())
    model_path = default_model_path()
    run = PipelineRun.objects.create(
        pipeline=pipeline,
        kind="full_retrain",
        state="succeeded",
        inputs_hash="-",
        parameters=build_params(max_length),
        parameters_hash="-",
        requested_by=admin,
        reason="bench/search_load.py: an index built outside a run",
        job_key=os.urandom(16).hex(),
        attempt=1,
    )
    model = ModelVersion.objects.create(
        run=run, base_model=model_path, path=model_path, checksum="-"
    )
    index = IndexVersion.objects.create(
        pipeline=pipeline,
        run=run,
        model_version=model,
        catalog_version=pipeline.input_assets.get(slug="product-catalog").versions.first(),
        path=str(artifact),
        checksum=meta["checksum"],
        kind=meta["kind"],
        n_items=meta["n"],
        dim=meta["dim"],
        build_params=meta["params"],
        metrics={"default_mode": "dense"},
        status="active",
        activated_at=timezone.now(),
    )
    ActiveIndex.objects.update_or_create(
        pipeline=pipeline, defaults={"index": index, "changed_by": admin}
    )
    return token.key, index.pk


# -- server ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def gunicorn(port: int, env: dict, workers: int, threads: int, log_path: Path):
    """gunicorn serving config.wsgi on 127.0.0.1:port until the block ends (SIGTERM, then
    SIGKILL to its own process group after 30 s)."""
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "config.wsgi:application",
        f"--bind=127.0.0.1:{port}",
        f"--workers={workers}",
        f"--threads={threads}",  # > 1 selects the gthread worker
        "--timeout=300",  # a worker's first request loads the index
        "--graceful-timeout=10",
        "--log-level=warning",
    ]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        say("gunicorn stopped")


def get(port: int, path: str, token: str, timeout: float = 300.0) -> tuple[int, bytes, float]:
    """(status, body, client milliseconds) of one GET on a fresh connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    started = time.perf_counter()
    try:
        conn.request("GET", path, headers={"Authorization": f"Token {token}"})
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    return response.status, body, (time.perf_counter() - started) * 1000


def search_path(query: str, k: int, mode: str | None) -> str:
    return f"/api/v1/search?q={quote_plus(query)}&k={k}" + (f"&mode={mode}" if mode else "")


def _warm_request(port: int, token: str, query: str, errors: list[str]) -> None:
    try:
        status, body, _ms = get(port, search_path(query, 10, None), token)
        if status != 200:
            errors.append(f"HTTP {status}: {body[:300]!r}")
    except OSError as exc:  # not listening yet
        errors.append(str(exc))


def wait_until_warm(proc, port: int, token: str, workers: int, log_path: Path, queries) -> float:
    """Requests (workers in parallel) until every worker has logged its index load."""
    started = time.monotonic()
    deadline = started + 900
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn exited ({proc.returncode}); see {log_path}")
        if log_path.read_text(errors="replace").count("loaded index v") >= workers:
            return time.monotonic() - started
        errors: list[str] = []
        pool = [
            threading.Thread(target=_warm_request, args=(port, token, queries[i], errors))
            for i in range(workers * 2)
        ]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        if any(e.startswith("HTTP 4") or e.startswith("HTTP 5") for e in errors):
            raise SystemExit(f"warm-up request failed: {errors[0]}")
        if errors:
            time.sleep(1)
    raise SystemExit(f"gunicorn not warm after 900 s; see {log_path}")


def worker_rss_mb(pid: int) -> list[float]:
    """Resident memory of the master's children (the workers), in MiB."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    sizes = []
    for child in children:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{child}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes.append(round(int(line.split()[1]) / 1024, 1))
    return sizes


# -- load --------------------------------------------------------------------------------------


def run_wrk(port, qfile, token, k, mode, connections, duration, offset, span) -> dict:
    """One wrk run; its threads start ``span // threads`` queries apart from ``offset``."""
    threads = min(connections, 2)
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout=30s",
        "-s",
        str(LUA_SCRIPT),
        f"http://127.0.0.1:{port}",
        "--",
        str(qfile),
        token,
        str(k),
        mode or "-",
        str(offset),
        str(max(1, span // threads)),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 120)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK_JSON ")), None)
    if line is None:
        raise SystemExit(
            f"wrk failed ({done.returncode}): {done.stdout[-500:]}{done.stderr[-500:]}"
        )
    raw = json.loads(line.removeprefix("WRK_JSON "))
    lat, seconds = raw["latency_us"], raw["duration_us"] / 1e6
    errors = raw["errors"]
    return {
        "connections": connections,
        "wrk_threads": threads,
        "requests": raw["requests"],
        "seconds": round(seconds, 2),
        "throughput_rps": round(raw["requests"] / seconds, 1),
        "latency_ms": {
            name: round(lat[name] / 1000, 2)
            for name in ("p50", "p90", "p99", "p99_9", "mean", "max")
        },
        "errors": errors,
        "failed": sum(errors.values()),
    }


def run_python(port, queries, token, k, mode, connections, duration, offset, span) -> dict:
    """Closed-loop threads, one per connection: the stand-in when wrk is not installed."""
    import numpy as np

    deadline = time.monotonic() + duration
    latencies: list[float] = []
    failed = [0]
    lock = threading.Lock()
    stride = max(1, span // connections)

    def client(i: int) -> None:
        n = offset + i * stride
        while time.monotonic() < deadline:
            n += 1
            try:
                path = search_path(queries[n % len(queries)], k, mode)
                status, _body, ms = get(port, path, token, 30.0)
            except OSError:
                status, ms = 0, 0.0
            with lock:
                if status == 200:
                    latencies.append(ms)
                else:
                    failed[0] += 1

    started = time.monotonic()
    pool = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    seconds = time.monotonic() - started
    lat = np.array(latencies or [np.nan])
    pct = {
        f"p{p}".replace(".", "_"): round(float(np.percentile(lat, p)), 2)
        for p in (50, 90, 99, 99.9)
    }
    return {
        "connections": connections,
        "requests": len(latencies) + failed[0],
        "seconds": round(seconds, 2),
        "throughput_rps": round(len(latencies) / seconds, 1),
        "latency_ms": {
            **pct,
            "mean": round(float(lat.mean()), 2),
            "max": round(float(lat.max()), 2),
        },
        "failed": failed[0],
    }


def breakdown(port: int, token: str, queries: list[str], k: int, mode: str | None) -> dict:
    """One client, sequential requests: client latency vs the server's own timings."""
    import numpy as np

    rows = []
    for query in queries:
        status, body, ms = get(port, search_path(query, k, mode), token)
        if status == 200:
            timings = json.loads(body)["timings"]
            rows.append((ms, timings["encode_ms"], timings["search_ms"], timings["total_ms"]))
    if not rows:
        return {"requests": 0}
    data = np.array(rows)
    names = ("client_ms", "encode_ms", "search_ms", "engine_total_ms")
    return {
        "requests": len(rows),
        **{
            name: {
                "p50": round(float(np.percentile(data[:, i], 50)), 2),
                "p99": round(float(np.percentile(data[:, i], 99)), 2),
            }
            for i, name in enumerate(names)
        },
    }


# -- recall ------------------------------------------------------------------------------------


def served_recall(artifact: Path, queries: list[str], n_judged: int, threads: int) -> dict:
    """recall@10 of the index as served (its tuned efSearch) vs exact search, on real queries."""
    _pin_threads(threads)
    import numpy as np

    from recsys.pipelines.encoding import encode, load_encoder
    from recsys.pipelines.indexing import exact_search, load_index, recall_vs_exact

    index = load_index(str(artifact))
    served_ef = index.index.hnsw.efSearch if index.kind == "hnsw" else None
    extra = index.meta.get("extra", {})
    encoder = load_encoder(extra.get("model_path"))
    vectors = encode(
        encoder,
        queries,
        max_length=int(extra.get("max_length") or 64),
        bf16=bool(extra.get("bf16")),
    )
    started = time.perf_counter()
    _s, found = index.search(vectors, 10)
    approx_ms = (time.perf_counter() - started) * 1000 / len(queries)
    stored = index.index.reconstruct_n(0, len(index.ids)).astype(np.float32)
    started = time.perf_counter()
    _s, exact = exact_search(stored, index.ids, vectors, 10)
    exact_ms = (time.perf_counter() - started) * 1000 / len(queries)
    sweep = ef_sweep(index, vectors, exact) if served_ef else []
    if served_ef:
        index.index.hnsw.efSearch = served_ef
    return {
        "kind": index.kind,
        "params": index.meta.get("params"),
        "queries": len(queries),
        "recall_at_10": round(recall_vs_exact(found, exact, 10), 4),
        "judged_queries": n_judged,
        "recall_at_10_judged": round(recall_vs_exact(found[:n_judged], exact[:n_judged], 10), 4),
        "build_recall_at_10_tuning": index.meta.get("recall_at_10_vs_exact"),
        "index_ms_per_query_batched": round(approx_ms, 3),
        "exact_ms_per_query_batched": round(exact_ms, 3),
        "ef_search_sweep": sweep,
    }


def ef_sweep(index, vectors, exact, steps=(16, 32, 64, 128, 256)) -> list[dict]:
    """recall@10 and single-query search time of the HNSW graph at other efSearch values."""
    import numpy as np

    from recsys.pipelines.indexing import recall_vs_exact

    rows = []
    for ef in steps:
        index.index.hnsw.efSearch = ef
        _s, found = index.search(vectors, 10)
        times = []
        for row in vectors:
            started = time.perf_counter()
            index.search(row[None, :], 10)
            times.append((time.perf_counter() - started) * 1000)
        rows.append(
            {
                "ef_search": ef,
                "recall_at_10": round(recall_vs_exact(found, exact, 10), 4),
                "search_ms_p50": round(float(np.percentile(times, 50)), 3),
                "search_ms_p99": round(float(np.percentile(times, 99)), 3),
            }
        )
    return rows


# -- main --------------------------------------------------------------------------------------


def load_phase(args, port, token, pool, qfile, proc, log_path) -> dict:
    """Warm-up, the measured runs, the single-client breakdown."""
    load_one = run_wrk if shutil.which("wrk") else run_python
    target = qfile if load_one is run_wrk else pool
    warm_s = wait_until_warm(proc, port, token, args.workers, log_path, pool[args.recall_queries :])
    say(f"every worker loaded the index ({warm_s:.1f} s)")
    slices = len(args.modes) * len(args.concurrency) + 2
    stride = max(1, len(pool) // slices)
    warm_connections = max(2, 2 * args.workers)
    runs = []
    for m, mode in enumerate(args.modes):
        say(f"mode {mode}: {args.warmup} s warm-up pass (not measured)")
        load_one(port, target, token, args.k, mode, warm_connections, args.warmup, 0, stride)
        for c, connections in enumerate(args.concurrency):
            # Requests still queued when the previous run stopped would delay this one.
            time.sleep(args.pause)
            offset = stride * (1 + m * len(args.concurrency) + c)
            say(f"mode {mode}, {connections} connections, {args.duration} s")
            result = load_one(
                port, target, token, args.k, mode, connections, args.duration, offset, stride
            )
            # Past its slice a run asks queries of the next one (embedding-cache hits there).
            result["requests_beyond_slice"] = max(0, result["requests"] - stride)
            runs.append({"mode": mode, **result})
    time.sleep(args.pause)
    n = args.breakdown_queries
    split = {  # each mode its own fresh queries, from the end of the pool
        mode: breakdown(
            port, token, pool[len(pool) - n * (i + 1) : len(pool) - n * i], args.k, mode
        )
        for i, mode in enumerate(args.modes)
    }
    return {
        "load_generator": "wrk" if load_one is run_wrk else "python threads (wrk not on PATH)",
        "warm_seconds": round(warm_s, 1),
        "runs": runs,
        "single_client_breakdown": split,
        "worker_rss_mb": worker_rss_mb(proc.pid),
        "queries_per_slice": stride,
    }


def run(args) -> dict:
    var = Path(args.var_dir).resolve()
    artifact, build = ensure_index(args, var / "bench" / "search-load")
    db_dir = var / "bench" / "search-load-db"
    shutil.rmtree(db_dir, ignore_errors=True)
    db_dir.mkdir(parents=True)
    say("scratch database: migrate, seed_demo, token, active index")
    env = server_env(db_dir)
    token, index_id = setup_database(env, artifact, args.max_length)
    real = chorus_products()
    pool = query_pool(real, args.query_pool, args.seed)
    qfile = db_dir / "queries.txt"
    qfile.write_text("".join(quote_plus(q) + "\n" for q in pool))
    port = args.port or free_port()
    log_path = db_dir / "gunicorn.log"
    say(f"gunicorn: {args.workers} workers x {args.threads} threads on 127.0.0.1:{port}")
    load_avg = [os.getloadavg()[0]]
    with gunicorn(port, env, args.workers, args.threads, log_path) as proc:
        load = load_phase(args, port, token, pool, qfile, proc, log_path)
    load_avg.append(os.getloadavg()[0])
    say("recall@10 of the served index vs exact search")
    recall = served_recall(
        artifact,
        pool[: args.recall_queries],
        min(len(judged_queries()), args.recall_queries),
        args.build_threads,
    )
    return {
        "index": {"path": str(artifact), "version_id": index_id, **build},
        "server": {
            "gunicorn_workers": args.workers,
            "gunicorn_threads": args.threads,
            "worker_class": "gthread" if args.threads > 1 else "sync",
            "serving_threads_per_worker": 1,
            "log": str(log_path),
        },
        "queries": {"pool": len(pool), "judged": len(judged_queries()), "k": args.k},
        "duration_seconds": args.duration,
        **load,
        "recall": recall,
        "targets_ms_single_client": TARGETS_MS,
        "cpus": os.cpu_count(),
        "load_average_start_end": [round(x, 2) for x in load_avg],
        "wall_seconds": round(time.monotonic() - _STARTED, 1),
    }


def table(result: dict) -> str:
    lines = [
        f"{'mode':<8}{'conns':>6}{'req/s':>9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}"
        f"{'max ms':>9}{'requests':>10}{'failed':>8}"
    ]
    for r in result["runs"]:
        lat = r["latency_ms"]
        lines.append(
            f"{r['mode']:<8}{r['connections']:>6}{r['throughput_rps']:>9.1f}{lat['p50']:>9.2f}"
            f"{lat['p90']:>9.2f}{lat['p99']:>9.2f}{lat['max']:>9.2f}{r['requests']:>10}"
            f"{r['failed']:>8}"
        )
    for r in result["runs"]:
        if r["connections"] == 1:
            lat = r["latency_ms"]
            ok = lat["p50"] <= TARGETS_MS["p50"] and lat["p99"] <= TARGETS_MS["p99"]
            lines.append(
                f"target (1 client, {r['mode']}): p50 <= 15 ms and p99 <= 50 ms: "
                f"{'met' if ok else 'NOT met'} (p50 {lat['p50']}, p99 {lat['p99']})"
            )
    for mode, split in result["single_client_breakdown"].items():
        if split.get("requests"):
            lines.append(
                f"1 client, {mode}, {split['requests']} fresh queries, p50 (p99) ms: client "
                f"{split['client_ms']['p50']} ({split['client_ms']['p99']}), encode "
                f"{split['encode_ms']['p50']} ({split['encode_ms']['p99']}), search "
                f"{split['search_ms']['p50']} ({split['search_ms']['p99']}), engine total "
                f"{split['engine_total_ms']['p50']} ({split['engine_total_ms']['p99']})"
            )
    rec, idx = result["recall"], result["index"]
    lines.append(
        f"index: {idx['kind']} of {idx['items']} items {json.dumps(idx['params'])}; recall@10 vs "
        f"exact {rec['recall_at_10']} on {rec['queries']} real queries "
        f"({rec['recall_at_10_judged']} on the {rec['judged_queries']} judged ones); "
        f"build tuning {rec['build_recall_at_10_tuning']}"
    )
    if rec["ef_search_sweep"]:
        lines.append(
            "efSearch sweep on the same queries (recall@10, single-query search p50 ms): "
            + ", ".join(
                f"{r['ef_search']}: {r['recall_at_10']} / {r['search_ms_p50']}"
                for r in rec["ef_search_sweep"]
            )
        )
    lines.append(
        f"{result['load_generator']}, gunicorn {result['server']['gunicorn_workers']} "
        f"{result['server']['worker_class']} workers, worker RSS {result['worker_rss_mb']} MB, "
        f"{result['cpus']} CPUs, load average {result['load_average_start_end']}, "
        f"wall {result['wall_seconds']} s"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_scratch_dir(parser)
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--rebuild", action="store_true", help="ignore the cached index")
    parser.add_argument("--build-threads", type=int, default=1, help="torch/faiss threads")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--duration", type=int, default=20, help="seconds per run")
    parser.add_argument("--warmup", type=int, default=5, help="seconds per mode, not measured")
    parser.add_argument("--pause", type=float, default=3.0, help="seconds idle between runs")
    parser.add_argument("--modes", default="dense", help="comma list of dense,bm25,hybrid")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="per worker (>1: gthread)")
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    parser.add_argument("--query-pool", type=int, default=40_000)
    parser.add_argument("--recall-queries", type=int, default=500)
    parser.add_argument("--breakdown-queries", type=int, default=200)
    args = parser.parse_args(argv)
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    check_scratch_dir(parser, args)
    result = run(args)
    print_result(result, table)
    return 1 if any(r["failed"] for r in result["runs"]) else 0


if __name__ == "__main__":
    sys.exit(main())
