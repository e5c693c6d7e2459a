"""The demo's governance data: the data assets with their responsibilities, schema contracts,
SLAs and a few dataset versions in every state a steward meets (approved, waiting in the inbox,
breaching an SLA), written through governance's services as the demo admin and members. Used
by seed_demo (not exported by governance.services: only the demo needs it)."""

from django.core.files.base import ContentFile

from data import demo_generator as gen
from governance import services
from governance.choices import AssetKind, Classification
from governance.models import ApprovalRequest, DataAsset
from teams.demo import assign_once

DEMO_ASSETS = [
    # slug, name, kind, team, classification, accountable (None = a reported gap), description
    (
        "product-catalog",
        "Product catalog",
        AssetKind.PRODUCT_CATALOG,
        "catalog-data",
        Classification.INTERNAL,
        "catalog.steward",
        "Titles, brands, prices and attributes of every product.",
    ),
    (
        "behaviour-events",
        "Behaviour events",
        AssetKind.BEHAVIOUR_EVENTS,
        "behaviour-analytics",
        Classification.PERSONAL,
        "behaviour.steward",
        "Views, clicks, carts and purchases per user.",
    ),
    (
        "relevance-labels",
        "Relevance labels",
        AssetKind.RELEVANCE_LABELS,
        "relevance-ml",
        Classification.INTERNAL,
        "relevance.steward",
        "Graded query-product judgments.",
    ),
    (
        "search-queries",
        "Search queries",
        AssetKind.QUERIES,
        "search-ops",
        Classification.CONFIDENTIAL,
        None,
        "Queries typed into the shop's search box.",
    ),
]
# username, RACI kind, asset slug: the other responsibilities for the demo assets
DEMO_ASSET_RACI = [
    ("catalog.engineer", "R", "product-catalog"),
    ("relevance.lead", "C", "product-catalog"),
    ("ops.ops", "I", "product-catalog"),
    ("behaviour.engineer", "R", "behaviour-events"),
    ("relevance.engineer", "R", "relevance-labels"),
    ("catalog.steward", "C", "relevance-labels"),
    ("ops.engineer", "R", "search-queries"),
]

CONTRACTS = {
    "product-catalog": {
        "columns": {
            "id": "string",
            "title": "string",
            "brand": "string",
            "category": "string",
            "price": "float",
        },
        "key": "id",
    },
    "relevance-labels": {
        "columns": {"query": "string", "product_id": "string", "grade": "integer"}
    },
    "behaviour-events": {
        "columns": {"user_id": "string", "product_id": "string", "event": "string", "ts": "integer"}
    },
}
SLAS = {
    "product-catalog": {
        "freshness_hours": 24 * 14,
        "min_rows": 1000,
        "max_null_rate": 0.05,
        "column_max_null_rates": {"description": 0.1},
        "max_duplicate_rate": 0.02,
        "approval_latency_hours": 48,
    },
    "relevance-labels": {"min_rows": 100, "max_null_rate": 0.0, "approval_latency_hours": 72},
    "behaviour-events": {"min_rows": 1000, "max_null_rate": 0.05, "approval_latency_hours": 48},
    "search-queries": {"freshness_hours": 24},
}


def seed_assets(*, admin, teams: dict, users: dict) -> dict[str, DataAsset]:
    """Idempotent: the demo assets, owned by the demo teams (`teams` by slug), and their
    responsibilities (`users` by username)."""
    assets = {}
    for slug, name, kind, team_slug, classification, accountable, description in DEMO_ASSETS:
        assets[slug] = DataAsset.objects.filter(slug=slug).first() or services.dataasset_create(
            actor=admin,
            name=name,
            slug=slug,
            kind=kind,
            owning_team=teams[team_slug],
            classification=classification,
            description=description,
        )
        if accountable:
            assign_once(admin, users[accountable], "A", subject=assets[slug])
    for username, kind, slug in DEMO_ASSET_RACI:
        assign_once(admin, users[username], kind, subject=assets[slug])
    return assets


def _upload(asset, uploader, name: str, text: str, note: str):
    version = services.dataset_version_upload(
        actor=uploader,
        asset=asset,
        file=ContentFile(text.encode(), name=name),
        name=name,
        note=note,
        submit=True,
    )
    # Profiled here so the demo is complete at once; the worker's copy of the job is a no-op.
    return services.dataset_version_profile(version_id=version.pk)


def seed_governance(*, admin, users: dict) -> int:
    """Contracts, SLAs and demo versions; idempotent (skips assets that have versions)."""
    assets = {a.slug: a for a in DataAsset.objects.filter(slug__in=set(CONTRACTS) | set(SLAS))}
    for slug, contract in CONTRACTS.items():
        if slug in assets and not assets[slug].schema_contract:
            services.dataasset_update(actor=admin, asset=assets[slug], schema_contract=contract)
    for slug, values in SLAS.items():
        if slug in assets and not hasattr(assets[slug], "sla"):
            services.assetsla_update(actor=admin, asset=assets[slug], **values)
    if any(a.versions.exists() for a in assets.values()):
        return 0
    catalog = gen.catalog_rows(2000, seed=7)
    # v1: a partial export, approved anyway: it breaches the volume SLA (an open incident).
    v1 = _upload(
        assets["product-catalog"],
        users["catalog.engineer"],
        "catalog-2026-11.csv",
        gen.to_csv(gen.catalog_rows(900, seed=5, messy=False)),
        "November catalog (partial export)",
    )
    request = ApprovalRequest.objects.get(subject_id=v1.pk, kind="dataset_version")
    services.approval_decide(
        actor=users["catalog.steward"],
        request=request,
        verdict="approve",
        comment="Partial, but better than nothing until the full export.",
    )
    # v2: the full catalog, waiting for a steward; approving it clears the volume incident.
    _upload(
        assets["product-catalog"],
        users["catalog.engineer"],
        "catalog-2026-12.csv",
        gen.to_csv(catalog),
        "December catalog: full export with new arrivals",
    )
    # v3: a broken re-export (no brand column): the schema check fails.
    without_brand = [{k: v for k, v in row.items() if k != "brand"} for row in catalog]
    _upload(
        assets["product-catalog"],
        users["catalog.engineer"],
        "catalog-2026-12-fix.csv",
        gen.to_csv(without_brand),
        "Quick re-export from the new PIM",
    )
    _upload(
        assets["relevance-labels"],
        users["relevance.engineer"],
        "labels-2026-12.csv",
        gen.to_csv(gen.queries_and_labels(catalog)),
        "Judged queries, December batch",
    )
    _upload(
        assets["behaviour-events"],
        users["behaviour.engineer"],
        "events-2026-12.csv",
        gen.to_csv(gen.behaviour_events(catalog)),
        "Sessions export (query column empty)",
    )
    services.slas_evaluate_all()
    return 5
