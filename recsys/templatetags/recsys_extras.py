"""Template helpers: metric names such as "ndcg@10" cannot be written as attribute lookups."""

from django import template

register = template.Library()


@register.filter
def get_item(mapping, key):
    return (mapping or {}).get(key)
