"""The demo's pipeline: "Product search", owned by search ops, over the three demo inputs."""

from recsys.models import Pipeline
from recsys.services import pipeline_create
from teams.models import Responsibility, Team

DEMO_PIPELINE = "product-search"
DEMO_DEFAULT_PARAMETERS = {"epochs": 1, "batch_size": 32, "max_length": 64}


def seed_pipeline(*, admin, users: dict) -> Pipeline:
    """Idempotent: the pipeline, its inputs and its accountable person (ops.lead)."""
    pipeline = Pipeline.objects.filter(slug=DEMO_PIPELINE).first()
    if pipeline is None:
        from governance.selectors import assets_visible_to

        pipeline = pipeline_create(
            actor=admin,
            name="Product search",
            slug=DEMO_PIPELINE,
            owning_team=Team.objects.get(slug="search-ops"),
            input_assets=list(
                assets_visible_to(user=admin).filter(
                    slug__in=["product-catalog", "relevance-labels", "behaviour-events"]
                )
            ),
            description="Cleans the catalog, fine-tunes the encoder on judged queries and "
            "behaviour, builds the FAISS index and evaluates it.",
            default_parameters=DEMO_DEFAULT_PARAMETERS,
        )
    if not Responsibility.objects.filter(
        subject_id=pipeline.pk, kind="A", subject_type__model="pipeline"
    ).exists():
        from teams.services import responsibility_assign

        responsibility_assign(actor=admin, user=users["ops.lead"], kind="A", subject=pipeline)
    return pipeline
