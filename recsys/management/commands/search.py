"""python manage.py search "query" --k 10 [--index VERSION] [--mode MODE] [--json]
python manage.py search --queries FILE --k 10 --json  (one query per line in, one JSON line out)

Answers exactly like the API (the same selector, recsys.search.answers): the model and the
index are loaded once for the whole batch. Runs as a user (--as, default: the first active
superuser), so the permission rules are the API's.
"""

from __future__ import annotations

import json
import sys

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from core.errors import ApplicationError
from recsys.pipelines.engine import SEARCH_MODES
from recsys.search import answers


class Command(BaseCommand):
    help = "Search the active (or a given) index from the command line, one query or a batch."

    def add_arguments(self, parser):
        parser.add_argument("query", nargs="?", help="The query (or use --queries FILE).")
        parser.add_argument("--queries", help="File with one query per line ('-' for stdin).")
        parser.add_argument("--k", type=int, default=10, help="Results per query (1-100).")
        parser.add_argument("--index", type=int, help="Index version (default: the active one).")
        parser.add_argument("--mode", choices=SEARCH_MODES)
        parser.add_argument("--pipeline", help="Pipeline slug (default: product-search).")
        parser.add_argument("--json", action="store_true", help="One JSON object per query.")
        parser.add_argument("--as", dest="username", help="Run as this user (default: admin).")

    def handle(self, *args, **options):
        if bool(options["query"]) == bool(options["queries"]):
            raise CommandError("Give one query, or --queries FILE (not both).")
        user = self._user(options["username"])
        queries = [options["query"]] if options["query"] else self._read(options["queries"])
        try:
            answers.parse_k(options["k"])
            if options["query"]:
                answers.parse_query(options["query"])
            # One index for the whole batch: loaded once, and never swapped mid-batch.
            where = answers.target(user=user, pipeline=options["pipeline"], index=options["index"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        failures = 0
        for query in queries:
            try:
                served = answers.search_in(where, q=query, k=options["k"], mode=options["mode"])
            except ApplicationError as exc:
                if len(queries) == 1:
                    raise CommandError(exc.message) from None
                failures += 1
                self.stdout.write(json.dumps({"query": query, "error": exc.message}))
                continue
            if options["json"]:
                self.stdout.write(
                    json.dumps(
                        {
                            "query": query,
                            "index_version": served.index_id,
                            "mode": served.answer.mode,
                            "results": [
                                {
                                    "product_id": h.product_id,
                                    "rank": h.rank,
                                    "score": round(h.score, 6),
                                }
                                for h in served.answer.hits
                            ],
                        }
                    )
                )
            else:
                self._table(query, served)
        if failures:
            raise CommandError(f"{failures} of {len(queries)} queries failed (see their errors).")

    def _user(self, username):
        users = get_user_model().objects.filter(is_active=True)
        user = (
            users.filter(username=username).first()
            if username
            else users.filter(is_superuser=True).order_by("pk").first()
        )
        if user is None:
            raise CommandError(
                f"No active user '{username}'." if username else "No active superuser: use --as."
            )
        return user

    def _read(self, path):
        try:
            handle = sys.stdin if path == "-" else open(path, encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror}") from None
        with handle:
            queries = [line.strip() for line in handle if line.strip()]
        if not queries:
            raise CommandError(f"{path} holds no query.")
        return queries

    def _table(self, query, served):
        t = served.answer.timings
        self.stdout.write(
            f'"{query}": index v{served.index_id}, mode {served.answer.mode}, '
            f"{t.get('total_ms')} ms"
        )
        for h in served.answer.hits:
            price = "" if h.price is None else f"{h.price:.2f}"
            self.stdout.write(
                f"{h.rank:>4}  {h.score:8.4f}  {h.product_id:<14} {h.title[:60]:<60} "
                f"{h.brand or '':<14} {price:>9}"
            )
