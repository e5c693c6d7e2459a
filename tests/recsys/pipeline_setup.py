"""A small organization with a pipeline over two approved inputs (shared by the run tests and
the worker test): alpha owns the catalog, beta owns the labels and the pipeline, beta.ops
requests runs. The pipeline's defaults use the tiny model and a few training steps."""

from django.core.files.base import ContentFile

from data import demo_generator as gen
from governance import services as gov
from governance.models import ApprovalRequest, DatasetVersion
from recsys import services
from teams import services as team_services
from tests.factories import UserFactory


def build_pipeline_org(org, tiny_model_path: str):
    labels_asset = gov.dataasset_create(
        actor=org.admin, name="Labels", slug="labels", kind="relevance_labels", owning_team=org.beta
    )
    ops = UserFactory(username="beta.ops")
    team_services.membership_grant(actor=org.admin, team=org.beta, user=ops, role="ops")
    org.users["beta.ops"] = ops
    catalog = gen.catalog_rows(160, seed=3)
    org.catalog_v = approved_version(org, org.asset, "alpha.steward", gen.to_csv(catalog))
    org.labels_v = approved_version(
        org, labels_asset, "beta.steward", gen.to_csv(gen.queries_and_labels(catalog, per_query=6))
    )
    org.pipeline = services.pipeline_create(
        actor=org.admin,
        name="Search",
        owning_team=org.beta,
        input_assets=[org.asset, labels_asset],
        default_parameters={
            "base_model": tiny_model_path,
            "max_steps": 3,
            "batch_size": 8,
            "max_length": 32,
        },
    )
    return org


def approved_version(org, asset, steward: str, text: str) -> DatasetVersion:
    version = gov.dataset_version_upload(
        actor=org.user("admin"),
        asset=asset,
        name="d.csv",
        file=ContentFile(text.encode(), name="d.csv"),
    )
    gov.dataset_version_profile(version_id=version.pk)
    request = ApprovalRequest.objects.get(subject_id=version.pk, kind="dataset_version")
    gov.approval_decide(actor=org.user(steward), request=request, verdict="approve", comment="ok")
    return DatasetVersion.objects.get(pk=version.pk)


def request_run(org, **parameters):
    return services.run_request(
        actor=org.user("beta.ops"),
        pipeline=org.pipeline,
        kind="full_retrain",
        inputs=[org.catalog_v, org.labels_v],
        parameters=parameters,
        reason="weekly retrain",
    )


def run_approval(run) -> ApprovalRequest:
    return ApprovalRequest.objects.get(kind="pipeline_run", subject_id=run.pk)


def approve_run(org, run) -> None:
    gov.approval_decide(
        actor=org.user("alpha.steward"),
        request=run_approval(run),
        verdict="approve",
        comment="catalog ok",
    )
    gov.approval_decide(
        actor=org.user("beta.lead"), request=run_approval(run), verdict="approve", comment="go"
    )
