"""The asset list (UI + API), the approvals inbox (UI + API) and the SLA dashboard use the same
number of queries for 10 and for 1,000 assets: no query per asset, version, request, decision,
incident or accountable person. The lists are paginated (assets 50 per page, inbox 25 per page in
the UI); the dashboard is not, so it must load every asset in a constant number of queries too.

The data is bulk-created (what the services would write, without their per-row cost): per asset
an SLA, a submitted and profiled version awaiting approval (quorum 2, half of them already
approved once by alpha.steward), and for some assets an approved version with a profile, an
accountable person and an open incident.
"""

from __future__ import annotations

import uuid

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from governance.models import (
    ApprovalRequest,
    ApprovalRequirement,
    ApprovalRequirementRole,
    AssetSLA,
    DataAsset,
    DatasetVersion,
    Decision,
    Incident,
)
from teams.models import Responsibility
from tests.helpers import assert_queries_constant, count_queries

pytestmark = pytest.mark.django_db

SMALL, LARGE = 10, 1000
PROFILE = {
    "rows": 3,
    "format": "csv",
    "columns": [
        {"name": "id", "dtype": "string", "null_rate": 0.0},
        {"name": "price", "dtype": "float", "null_rate": 0.25},
    ],
    "key": {"column": "id", "duplicates": 0, "duplicate_rate": 0.0},
}


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


class Catalogs:
    """Bulk-created assets of alpha, grown from `size` up to a new size."""

    def __init__(self, org):
        self.org = org
        self.size = 0
        self.asset_type = ContentType.objects.get_for_model(DataAsset)
        self.version_type = ContentType.objects.get_for_model(DatasetVersion)

    def grow(self, size: int) -> None:
        new = range(self.size, size)
        org, alpha = self.org, self.org.alpha
        steward, engineer = org.user("alpha.steward"), org.user("alpha.engineer")
        DataAsset.objects.bulk_create(
            [
                DataAsset(
                    name=f"Asset {i:04d}", slug=f"asset-{i:04d}", kind="queries", owning_team=alpha
                )
                for i in new
            ]
        )
        assets = list(
            DataAsset.objects.filter(slug__in=[f"asset-{i:04d}" for i in new]).order_by("slug")
        )
        AssetSLA.objects.bulk_create(
            [AssetSLA(asset=a, freshness_hours=24, min_rows=1, max_null_rate=0.5) for a in assets]
        )
        Responsibility.objects.bulk_create(
            [
                Responsibility(
                    team=alpha,
                    user=steward,
                    kind="A",
                    subject_type=self.asset_type,
                    subject_id=a.pk,
                )
                for i, a in zip(new, assets, strict=True)
                if i % 2 == 0
            ]
        )

        def version(asset, number: int, status: str) -> DatasetVersion:
            key = uuid.uuid4().hex
            return DatasetVersion(
                asset=asset,
                number=number,
                status=status,
                storage_key=key,
                file=f"datasets/{asset.slug}/{key}/data.csv",
                original_name="data.csv",
                format="csv",
                size_bytes=42,
                sha256="0" * 64,
                uploaded_by=engineer,
                profile_status="succeeded",
                profile=PROFILE,
                row_count=PROFILE["rows"],
                sla_results={"ok": True, "checks": []},
            )

        approved = [
            version(a, 1, "approved") for i, a in zip(new, assets, strict=True) if i % 10 == 0
        ]
        submitted = [version(a, 2, "submitted") for a in assets]
        DatasetVersion.objects.bulk_create(approved + submitted)
        submitted = list(
            DatasetVersion.objects.filter(asset__in=assets, number=2).order_by("asset__slug")
        )
        ApprovalRequest.objects.bulk_create(
            [
                ApprovalRequest(
                    kind="dataset_version",
                    subject_type=self.version_type,
                    subject_id=v.pk,
                    requester=engineer,
                    reason=f"please approve {v.asset.slug}",
                    content_hash="0" * 64,
                )
                for v in submitted
            ]
        )
        requests = list(
            ApprovalRequest.objects.filter(
                subject_type=self.version_type, subject_id__in=[v.pk for v in submitted]
            ).order_by("subject_id")
        )
        ApprovalRequirement.objects.bulk_create(
            [
                ApprovalRequirement(
                    request=r, team=alpha, quorum=2, approvals=1 if i % 2 == 0 else 0
                )
                for i, r in zip(new, requests, strict=True)
            ]
        )
        ApprovalRequirementRole.objects.bulk_create(
            [
                ApprovalRequirementRole(requirement=requirement, role=role)
                for requirement in ApprovalRequirement.objects.filter(request__in=requests)
                for role in ("steward", "lead")
            ]
        )
        Decision.objects.bulk_create(
            [
                Decision(request=r, approver=steward, team=alpha, verdict="approve")
                for i, r in zip(new, requests, strict=True)
                if i % 2 == 0
            ]
        )
        Incident.objects.bulk_create(
            [
                Incident(
                    asset=a,
                    rule="freshness",
                    dedup_key="freshness",
                    summary=f"{a.slug} is stale",
                    assigned_to=steward,
                )
                for i, a in zip(new, assets, strict=True)
                if i % 7 == 0
            ]
        )
        self.size = size


@pytest.fixture
def catalogs(org) -> Catalogs:
    built = Catalogs(org)
    built.grow(SMALL)
    return built


# --- counting ------------------------------------------------------------------------------------

ROWS = (f"{SMALL} assets", LARGE)


def ui(client, user):
    client.force_login(user)
    return client


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def first_request_id() -> int:
    return ApprovalRequest.objects.order_by("created_at", "id").values_list("id", flat=True)[0]


# --- the pages -----------------------------------------------------------------------------------


def test_asset_list_ui(catalogs, client):
    ui(client, catalogs.org.user("alpha.lead"))
    url = "/governance/assets/"
    small = count_queries(client, url, expect=["Asset 0000", "Asset 0009", "Page 1 of 1<"])
    catalogs.grow(LARGE)
    large = count_queries(client, url, expect=["Asset 0000", "Asset 0049", "Page 1 of 21<"])
    assert "Asset 0050" not in client.get(url).content.decode()
    assert_queries_constant("asset list GET /governance/assets/", small, large, rows=ROWS)


def test_asset_list_api(catalogs):
    client = api(catalogs.org.user("alpha.lead"))
    url = "/api/v1/assets/"
    small = count_queries(
        client, url, expect=[f'"count":{SMALL + 1}', '"accountable":"alpha.steward"']
    )
    catalogs.grow(LARGE)
    large = count_queries(client, url, expect=[f'"count":{LARGE + 1}', '"current_version":1'])
    assert len(client.get(url).json()["results"]) == 50
    assert_queries_constant("asset list API GET /api/v1/assets/", small, large, rows=ROWS)


def test_approvals_inbox_ui(catalogs, client):
    ui(client, catalogs.org.user("alpha.lead"))
    url = "/governance/approvals/"
    first = f'id="request-{first_request_id()}"'
    small = count_queries(client, url, expect=[first, "Asset 0009 v2", "Alpha 1/2", "Alpha 0/2"])
    catalogs.grow(LARGE)
    large = count_queries(client, url, expect=[first, "Asset 0024 v2", "Page 1 of 40<"])
    assert client.get(url).content.decode().count('class="card request"') == 25
    assert_queries_constant("approvals inbox GET /governance/approvals/", small, large, rows=ROWS)


def test_approvals_inbox_api(catalogs):
    client = api(catalogs.org.user("alpha.lead"))
    url = "/api/v1/approvals/inbox/"
    small = count_queries(
        client,
        url,
        expect=[
            f'"count":{SMALL}',
            '"approver":"alpha.steward"',
            '"approver_roles":["steward","lead"]',
        ],
    )
    catalogs.grow(LARGE)
    large = count_queries(client, url, expect=[f'"count":{LARGE}', '"approver":"alpha.steward"'])
    assert_queries_constant(
        "approvals inbox API GET /api/v1/approvals/inbox/", small, large, rows=ROWS
    )


def test_sla_dashboard(catalogs, client):
    ui(client, catalogs.org.user("alpha.lead"))
    url = "/governance/sla/"
    small = count_queries(
        client, url, expect=["Asset 0009", "asset-0007 is stale", 'class="spark"']
    )
    catalogs.grow(LARGE)
    large = count_queries(client, url, expect=["Asset 0000", "Asset 0999", "asset-0994 is stale"])
    body = client.get(url).content.decode()
    assert body.count("/governance/assets/asset-") == LARGE  # every asset, no pagination
    assert_queries_constant("SLA dashboard GET /governance/sla/", small, large, rows=ROWS)


def test_notified_approvers_queries_do_not_grow_with_approvers_or_roles(catalogs):
    """Who is asked to decide (governance.deciders.eligible_approvers, which the notifications
    and the run blockers use) reads the role rows of every requirement at once."""
    from governance import deciders
    from teams import services as team_services
    from tests.factories import UserFactory

    org = catalogs.org
    request = ApprovalRequest.objects.order_by("id").first()

    def asked() -> tuple[int, list[str]]:
        with CaptureQueriesContext(connection) as ctx:
            names = [u.username for u in deciders.eligible_approvers(request)]
        return len(ctx.captured_queries), names

    small, names = asked()
    assert names == ["alpha.lead"]  # alpha.steward has decided; alpha.engineer asked
    for i in range(5):
        team_services.membership_grant(
            actor=org.admin, team=org.alpha, user=UserFactory(username=f"s{i}"), role="steward"
        )
    large, names = asked()
    assert names == ["alpha.lead", "s0", "s1", "s2", "s3", "s4"]
    assert large == small, f"{small} queries for 1 approver, {large} for 6"
