"""Validating an Input serializer in one call (shared by every app's API views)."""


def valid_input(serializer_class, data) -> dict:
    """The validated data, or DRF's 400 with the field errors."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
