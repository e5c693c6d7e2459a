"""htmx conventions shared by the live pages."""

# htmx swaps a response with this status like a 200, then stops polling the element.
HTMX_STOP_POLLING = 286


def stop_polling_when_final(request, response, *, final: bool):
    """The poller of a live page lives on the swapped element and is left out once the object
    is final; a poll that lands after that is also answered 286, so no poller outlives it."""
    if final and request.headers.get("HX-Request") == "true":
        response.status_code = HTMX_STOP_POLLING
    return response
