"""Template helpers: metric names such as "ndcg@10" cannot be written as attribute lookups."""

from django import template

register = template.Library()


@register.filter
def get_item(mapping, key):
    return (mapping or {}).get(key)


@register.filter
def index_of(sequence, position):
    """``sequence[position]`` (or "" when out of range)."""
    try:
        return sequence[int(position)]
    except (IndexError, TypeError, ValueError):
        return ""


@register.simple_tag
def query_with(params, **changes):
    """The query string of ``params`` (a QueryDict) with ``changes`` applied."""
    query = params.copy()
    for key, value in changes.items():
        query[key] = value
    return query.urlencode()


@register.filter
def first_word(text):
    return str(text).split(" ", 1)[0] if text else ""
