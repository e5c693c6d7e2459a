"""State of the search console: the query history (a pruned log, like an access log, so not
audited) and saved query sets (named by their owner; creating and deleting them is audited)."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from core.audit import audit_record
from core.errors import NotFoundError, ValidationError
from recsys.models import ConsoleQuery, Pipeline, SavedQuerySet
from recsys.search import answers

CONSOLE_HISTORY = 50
MAX_SAVED_QUERIES = 200


def console_query_record(
    *, user, pipeline: Pipeline, query: str, mode: str, k: int, filters: dict, index_id
) -> ConsoleQuery:
    """Remember a console query; keeps the newest CONSOLE_HISTORY of the user."""
    entry = ConsoleQuery.objects.create(
        user=user,
        pipeline=pipeline,
        query=query,
        mode=mode,
        k=k,
        filters=filters,
        index_version_id=index_id,
    )
    stale = ConsoleQuery.objects.filter(user=user).values_list("pk", flat=True)[CONSOLE_HISTORY:]
    ConsoleQuery.objects.filter(pk__in=list(stale)).delete()
    return entry


def _clean_queries(text_or_list) -> list[str]:
    lines = text_or_list.splitlines() if isinstance(text_or_list, str) else list(text_or_list)
    queries = list(dict.fromkeys(" ".join(str(q).split()) for q in lines))
    queries = [q for q in queries if q]
    if not queries:
        raise ValidationError("A query set needs at least one query.", field="queries")
    if len(queries) > MAX_SAVED_QUERIES:
        raise ValidationError(
            f"A query set holds at most {MAX_SAVED_QUERIES} queries; this one has {len(queries)}.",
            field="queries",
        )
    for query in queries:
        answers.parse_query(query)  # same limits as a search
    return queries


@transaction.atomic
def query_set_save(*, actor, pipeline: Pipeline, name: str, queries) -> SavedQuerySet:
    """Save a named query set for later comparisons (one name per owner)."""
    answers.require_query(actor, pipeline)
    name = " ".join(str(name or "").split())
    if not name:
        raise ValidationError("Give the query set a name.", field="name")
    if len(name) > 120:
        raise ValidationError("The name is longer than 120 characters.", field="name")
    cleaned = _clean_queries(queries)
    try:
        with transaction.atomic():
            saved = SavedQuerySet.objects.create(
                owner=actor, pipeline=pipeline, name=name, queries=cleaned
            )
    except IntegrityError:
        raise ValidationError(
            f"You already have a query set named '{name}'.", field="name"
        ) from None
    audit_record(
        actor=actor,
        verb="query_set.saved",
        target=saved,
        after={"name": name, "pipeline": pipeline.slug, "queries": len(cleaned)},
    )
    return saved


@transaction.atomic
def query_set_delete(*, actor, query_set: SavedQuerySet) -> None:
    if query_set.owner_id != actor.pk:
        raise NotFoundError("Query set not found.")
    audit_record(
        actor=actor,
        verb="query_set.deleted",
        target=query_set,
        before={"name": query_set.name, "queries": len(query_set.queries)},
    )
    query_set.delete()
