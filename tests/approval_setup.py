"""Helpers the approval tests share (governance's state machine, four eyes, redirects, and the
recsys pages that show approvals): upload a version, find a subject's request, snapshot what a
refused decision must not change, and build a pipeline over an approved catalog."""

from __future__ import annotations

from django.contrib.contenttypes.models import ContentType
from django.core.files.uploadedfile import SimpleUploadedFile

from governance import services as gov
from governance.choices import ApprovalKind
from governance.models import ApprovalRequest, DatasetVersion, Decision
from recsys import services as recsys_services
from recsys.models import IndexVersion
from teams import services as team_services
from teams.models import Notification
from tests import helpers
from tests.factories import UserFactory

CSV = b"id,title,price\n1,Red shoe,10.5\n2,Blue shoe,12.0\n3,Green hat,7.25\n"


def upload(
    org, *, by: str = "alpha.engineer", content: bytes = CSV, note: str = "", submit: bool = True
) -> DatasetVersion:
    """Upload and profile a version (with submit=True it is submitted for approval once
    profiled; without, it stays a draft)."""
    version = gov.dataset_version_upload(
        actor=org.user(by),
        asset=org.asset,
        file=SimpleUploadedFile("catalog.csv", content),
        name="catalog.csv",
        note=note,
        submit=submit,
    )
    return gov.dataset_version_profile(version_id=version.pk)


def draft(org, by: str) -> DatasetVersion:
    """A version uploaded and profiled by `by`, left a draft."""
    return upload(org, by=by, submit=False)


def request_of(subject) -> ApprovalRequest:
    """The one approval request of `subject`."""
    return ApprovalRequest.objects.get(
        subject_type=ContentType.objects.get_for_model(subject), subject_id=subject.pk
    )


def open_request(kind: str, subject) -> ApprovalRequest:
    """The latest request of `kind` about `subject`."""
    return ApprovalRequest.objects.filter(kind=kind, subject_id=subject.pk).latest("id")


def snapshot(request: ApprovalRequest) -> dict:
    """Everything a refused decision must leave untouched (and the audit trail)."""
    tables = {
        "request": ApprovalRequest.objects.filter(pk=request.pk).values_list(
            "state", "decided_at", "outcome_note", "escalation_level"
        ),
        "requirements": request.requirements.values_list("team__slug", "approvals"),
        "decisions": Decision.objects.filter(request=request).values_list("id", "verdict"),
        "notifications": Notification.objects.values_list("id", "recipient_id"),
    }
    if request.kind == ApprovalKind.DATASET_VERSION:
        tables["version"] = DatasetVersion.objects.filter(pk=request.subject_id).values_list(
            "status", "decided_at"
        )
    return helpers.snapshot(tables)


def member(org, username: str, role: str):
    """A new user holding `role` in alpha (granted by the admin through the teams service)."""
    user = UserFactory(username=username)
    team_services.membership_grant(actor=org.admin, team=org.alpha, user=user, role=role)
    org.users[username] = user
    return user


def pipeline(org):
    """alpha's pipeline "Search" over an approved catalog version (kept as org.catalog_v)."""
    catalog = draft(org, "admin")
    gov.dataset_version_submit(actor=org.admin, version=catalog)
    gov.approval_decide(
        actor=org.user("alpha.steward"),
        request=open_request(ApprovalKind.DATASET_VERSION, catalog),
        verdict="approve",
    )
    org.catalog_v = DatasetVersion.objects.get(pk=catalog.pk)
    return recsys_services.pipeline_create(
        actor=org.admin, name="Search", owning_team=org.alpha, input_assets=[org.asset]
    )


def run_of(org, line, by: str):
    """A clean run of `line` over org.catalog_v, requested by `by`."""
    return recsys_services.run_request(
        actor=org.user(by), pipeline=line, kind="clean", inputs=[org.catalog_v], reason="why"
    )


def activation_asked(org, line, *, run, model) -> IndexVersion:
    """A candidate index of `line` (no files: it is never served) whose activation alpha.lead
    has asked for."""
    index = IndexVersion.objects.create(
        pipeline=line,
        run=run,
        model_version=model,
        catalog_version=org.catalog_v,
        path="/nowhere",
        checksum="0",
        kind="flat",
        n_items=3,
        dim=8,
    )
    recsys_services.index_request_activation(actor=org.user("alpha.lead"), index=index)
    return index
