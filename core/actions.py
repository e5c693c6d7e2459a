"""What a user may do with an object, as data: one verdict per action.

Each kind of object has one predicate, e.g. `run_actions(user, run)`, returning
`{"cancel": Allowed() | Refused(reason, error), ...}`. The service calls it (and raises the
refusal), the view hands it to the template (which reads booleans: a verdict is truthy when
allowed) and the API reads the same verdicts, so the rule is written once.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Allowed:
    """The action may be done now."""

    reason: str = ""

    def __bool__(self) -> bool:
        return True

    def require(self) -> None:
        """Nothing to raise."""


@dataclass(frozen=True)
class Refused:
    """The action may not be done now; `reason` is shown to the user, `error` is the
    ApplicationError subclass a service raises with it (its status code: 400, 403, 404...)."""

    reason: str
    error: type[Exception]

    def __bool__(self) -> bool:
        return False

    def require(self) -> None:
        """Raise the refusal, as the service's check."""
        raise self.error(self.reason)


Verdict = Allowed | Refused


def first_refusal(*verdicts: Verdict) -> Verdict:
    """The first refusal among `verdicts` (checked in order), else Allowed."""
    return next((v for v in verdicts if not v), Allowed())
