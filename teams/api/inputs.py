"""Validating an Input serializer in one call, and the bounded input fields every app's input
serializers use: an integer, id or list a client sends is checked against its range or length
(400 with a message) before it reaches a query, and the schema documents those bounds."""

from rest_framework import serializers

MAX_ID = 2**63 - 1  # primary keys are bigint (BigAutoField)
MAX_HOURS = 24 * 366 * 10  # a duration in hours: ten years at most
MAX_DAYS = 366 * 100  # a retention in days: a hundred years at most
MAX_COUNT = 2**63 - 1  # a count stored as a bigint (e.g. a minimum number of rows)
MAX_LIST = 100  # items in one list of ids or names


class IdField(serializers.IntegerField):
    """The id of an object: 1 to 2**63-1 (a larger one could not be looked up: 400, not 500)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(**kwargs)


def valid_input(serializer_class, data) -> dict:
    """The validated data, or DRF's 400 with the field errors."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
