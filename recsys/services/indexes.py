"""Serving a new index: activation needs an approval (the pipeline team's lead by default) and
a passing quality gate; it switches the active pointer in one transaction and keeps the previous
index for a one-click rollback. Both are audited."""

from __future__ import annotations

import os

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.audit import audit_record
from core.errors import PermissionDeniedError, ValidationError
from governance.choices import ApprovalKind
from governance.selectors import approval_latest_for
from governance.services.approvals import SubjectHandler, approval_request_open
from recsys.actions import index_actions, pipeline_actions
from recsys.choices import IndexStatus
from recsys.constants import QUALITY_GATE_TOLERANCE_DEFAULT
from recsys.models import ActiveIndex, IndexVersion, Pipeline
from recsys.pipelines.common import stable_hash
from recsys.transitions import assert_index_transition


def gate_tolerance() -> float:
    return float(
        getattr(settings, "STEWARD_QUALITY_GATE_TOLERANCE", QUALITY_GATE_TOLERANCE_DEFAULT)
    )


def serving_mode(index: IndexVersion) -> str:
    """The retrieval mode an index serves by default: the best on its held-out queries
    (dense when the run measured only dense)."""
    return (index.metrics or {}).get("default_mode") or "dense"


def serving_dense_weight(index: IndexVersion) -> float:
    """The weight of the dense list in the index's hybrid fusion, tuned when it was evaluated
    (plain RRF, 0.5, for an index evaluated before fusion was tuned)."""
    from recsys.pipelines.lexical import DENSE_WEIGHT_DEFAULT

    weight = ((index.metrics or {}).get("fusion") or {}).get("dense_weight")
    return DENSE_WEIGHT_DEFAULT if weight is None else float(weight)


def mode_metrics(index: IndexVersion, mode: str | None = None) -> dict:
    """Held-out metrics of an index in one mode (its default mode when None)."""
    mode = mode or serving_mode(index)
    return (index.metrics or {}).get("fine_tuned" if mode == "dense" else mode) or {}


def quality_gate(index: IndexVersion) -> tuple[bool, str]:
    """No regression of nDCG@10 beyond the tolerance against the index served now (measured on
    the same held-out queries by the run that built the candidate), each in its default mode."""
    metrics = index.metrics or {}
    candidate = mode_metrics(index).get("ndcg@10")
    if candidate is None:
        return False, "the candidate has no held-out nDCG@10"
    active = metrics.get("active")
    if not active:
        return True, f"nDCG@10 {candidate:.4f}; no index was active to compare with"
    baseline = active.get("ndcg@10", 0.0)
    ok = candidate >= baseline - gate_tolerance()
    verdict = "passes" if ok else "fails"
    return ok, (
        f"nDCG@10 {candidate:.4f} vs active {baseline:.4f} (tolerance "
        f"{gate_tolerance():.3f}): {verdict}"
    )


def index_content_hash(index: IndexVersion) -> str:
    return stable_hash([index.pk, index.checksum, index.path])


@transaction.atomic
def index_request_activation(*, actor, index: IndexVersion, reason: str = ""):
    """Ask the pipeline team (its lead by default) to approve serving this index."""
    activation = approval_latest_for(index, requirements=False, decisions=False)
    index_actions(actor, index, activation=activation)["request_activation"].require()
    return approval_request_open(
        actor=actor,
        kind=ApprovalKind.INDEX_ACTIVATION,
        subject=index,
        reason=reason or f"Serve index v{index.pk}",
    )


def index_activate(*, actor, index: IndexVersion) -> ActiveIndex:
    """Switch the pipeline's active pointer to `index` (approved, passes the gate, intact).

    The index's files are verified (every one hashed) before the short transaction that
    switches the pointer, so no lock is held meanwhile (on SQLite the database's one write
    lock); under its lock the switch re-checks the rules and that the files are unchanged."""
    index = IndexVersion.objects.select_related("pipeline__owning_team").get(pk=index.pk)
    _activation_check(actor, index)  # refusals come before the slow verification
    verified = _verified_files(index)
    with transaction.atomic():
        index = (
            IndexVersion.objects.select_for_update(of=("self",))
            .select_related("pipeline__owning_team")
            .get(pk=index.pk)
        )
        detail = _activation_check(actor, index)
        if _file_stamps(index.path) != verified:
            raise ValidationError(
                f"Index v{index.pk} changed while it was verified; activate it again."
            )
        return _switch(
            actor=actor,
            pipeline=index.pipeline,
            target=index,
            verb="index.activated",
            detail=detail,
        )


def _activation_check(actor, index: IndexVersion) -> str:
    """Raises unless `actor` may serve `index` now; the quality gate's verdict otherwise."""
    request = approval_latest_for(index, requirements=False, decisions=False)
    index_actions(actor, index, activation=request)["activate"].require()
    if request.content_hash != index_content_hash(index):
        raise PermissionDeniedError("The index changed after its activation was approved.")
    ok, detail = quality_gate(index)
    if not ok:
        raise ValidationError(f"The quality gate refuses index v{index.pk}: {detail}.")
    return detail


def _verified_files(index: IndexVersion) -> dict:
    """Check the index's files against their checksums (slow: call outside a transaction); the
    size and modification time of each, taken before, to compare with at the switch."""
    from recsys.pipelines import indexing

    try:
        stamps = _file_stamps(index.path)
        indexing.verify_index(index.path)
    except (indexing.IndexChecksumError, OSError) as exc:
        raise ValidationError(f"Index v{index.pk} is damaged and cannot be served: {exc}") from None
    return stamps


def _file_stamps(path: str) -> dict | None:
    try:
        with os.scandir(path) as entries:
            return {
                e.name: (e.stat().st_size, e.stat().st_mtime_ns) for e in entries if e.is_file()
            }
    except OSError:
        return None


def _switch(*, actor, pipeline: Pipeline, target: IndexVersion, verb: str, detail: str):
    """Serve `target` instead of the pipeline's current index, which retires (the statuses
    change as INDEX_TRANSITIONS allows)."""
    pointer = ActiveIndex.objects.select_for_update().filter(pipeline=pipeline).first()
    before = {"active": pointer.index_id if pointer else None}
    assert_index_transition(target.status, IndexStatus.ACTIVE, what=f"Index v{target.pk}")
    if pointer is None:
        pointer = ActiveIndex(pipeline=pipeline, index=target, changed_by=actor)
    else:
        current = pointer.index
        assert_index_transition(current.status, IndexStatus.RETIRED, what=f"Index v{current.pk}")
        IndexVersion.objects.filter(pk=current.pk).update(status=IndexStatus.RETIRED)
        pointer.previous, pointer.index, pointer.changed_by = current, target, actor
    pointer.save()
    IndexVersion.objects.filter(pk=target.pk).update(
        status=IndexStatus.ACTIVE, activated_at=timezone.now()
    )
    audit_record(
        actor=actor,
        verb=verb,
        target=target,
        before=before,
        after={"active": target.pk, "previous": pointer.previous_id, "gate": detail},
    )
    return pointer


@transaction.atomic
def index_rollback(*, actor, pipeline: Pipeline) -> ActiveIndex:
    """Serve the previous index again (one click); the current one is retired."""
    pointer = ActiveIndex.objects.select_for_update().filter(pipeline=pipeline).first()
    pipeline_actions(actor, pipeline, active=pointer)["rollback"].require()
    return _switch(
        actor=actor,
        pipeline=pipeline,
        target=pointer.previous,
        verb="index.rolled_back",
        detail="rollback",
    )


def _on_activation_closed(actor, index, request) -> None:
    """A rejected or expired activation leaves the index a candidate; nothing to undo."""


INDEX_HANDLER = SubjectHandler(
    kind=ApprovalKind.INDEX_ACTIVATION,
    content_hash=index_content_hash,
    required_teams=lambda index: [index.pipeline.owning_team],
    on_approved=lambda actor, index, request: None,
    on_closed=_on_activation_closed,
    link=lambda index: f"/recsys/pipelines/{index.pipeline.slug}/#index-{index.pk}",
    model=IndexVersion,
    authors=(
        ("run__requested_by", "requested the run that built it"),
        ("model_version__run__requested_by", "requested the run that trained its model"),
    ),
)
