"""The API contract tells the truth: every input bounded (400, never 500), every response as
documented, every error answer documented with the one error shape, and pagination and filter
parameters rejecting what the schema does not allow."""

from __future__ import annotations

import pytest
from django.db import models as db_models
from drf_spectacular.generators import SchemaGenerator
from rest_framework import serializers

from tests.conftest import api_as

pytestmark = pytest.mark.django_db

HUGE = 118789879917412712448  # beyond any bigint


@pytest.fixture(scope="module")
def schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def _serializer_modules():
    import governance.api.serializers as governance
    import recsys.api.serializers as recsys
    import teams.api.serializers as teams

    return [governance, recsys, teams]


def _serializers(suffix: str):
    for module in _serializer_modules():
        for name, value in vars(module).items():
            if (
                isinstance(value, type)
                and issubclass(value, serializers.Serializer)
                and value.__module__ == module.__name__
                and name.endswith(suffix)
            ):
                yield name, value


def _walk(fields, prefix=""):
    for name, field in fields.items():
        yield f"{prefix}{name}", field
        if isinstance(field, serializers.ListSerializer):
            yield from _walk(field.child.fields, f"{prefix}{name}[].")
        elif isinstance(field, serializers.ListField):
            yield f"{prefix}{name}[]", field.child


def test_every_input_integer_and_list_is_bounded():
    unbounded = []
    for name, serializer in _serializers("InputSerializer"):
        for path, field in _walk(serializer().fields):
            if isinstance(field, serializers.IntegerField) and (
                field.min_value is None or field.max_value is None
            ):
                unbounded.append(f"{name}.{path}: no min_value/max_value")
            if isinstance(field, serializers.ListField | serializers.ListSerializer) and (
                field.max_length is None
            ):
                unbounded.append(f"{name}.{path}: no max_length")
    assert not unbounded, "\n".join(unbounded)


def test_output_fields_over_nullable_columns_are_documented_nullable():
    lies = []
    for name, serializer in _serializers("Serializer"):
        if not issubclass(serializer, serializers.ModelSerializer):
            continue
        model = serializer.Meta.model
        for field_name, field in serializer().fields.items():
            try:
                column = model._meta.get_field(field.source)
            except Exception:  # noqa: S112 - a method or computed field
                continue
            nullable = isinstance(column, db_models.Field) and column.null
            if nullable and not column.one_to_many and not getattr(field, "allow_null", False):
                lies.append(f"{name}.{field_name}")
    assert not lies, f"null in the database, not nullable in the schema: {lies}"


def test_a_huge_id_among_the_run_inputs_is_a_400_not_a_500(org):
    from recsys.services.pipelines import pipeline_create

    pipeline_create(actor=org.admin, name="Search", owning_team=org.alpha, input_assets=[org.asset])
    response = api_as(org.user("alpha.ops")).post(
        "/api/v1/runs/",
        {"pipeline": "search", "kind": "clean", "inputs": [HUGE], "reason": "r"},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "ValidationError"
    assert "inputs" in response.json()["errors"]


def test_a_huge_responsibility_subject_id_is_a_400(org):
    response = api_as(org.admin).post(
        "/api/v1/responsibilities/",
        {
            "username": "alpha.lead",
            "kind": "accountable",
            "subject_type": "governance.dataasset",
            "subject_id": HUGE,
        },
        format="json",
    )
    assert response.status_code == 400, response.content
    assert "subject_id" in response.json()["errors"]


@pytest.mark.parametrize("page", ["", "last", "0", "-1", "x", str(HUGE)])
def test_a_page_the_schema_does_not_allow_is_a_400(org, page):
    response = api_as(org.admin).get("/api/v1/teams/", {"page": page})
    assert response.status_code == 400, (page, response.content)
    assert response.json()["field"] == "page"


def test_a_page_past_the_end_is_a_404_with_the_error_shape(org):
    response = api_as(org.admin).get("/api/v1/teams/", {"page": 99})
    assert response.status_code == 404
    assert set(response.json()) >= {"detail"}


@pytest.mark.parametrize(
    "query",
    [{"parent_id": str(HUGE)}, {"parent_id": "1.5"}, {"archived": "maybe"}, {"root": "null"}],
)
def test_filters_reject_what_the_schema_does_not_allow(org, query):
    response = api_as(org.admin).get("/api/v1/teams/", query)
    assert response.status_code == 400, (query, response.content)


def test_filters_still_filter(org):
    slugs = {t["slug"] for t in api_as(org.admin).get("/api/v1/teams/?root=true").json()["results"]}
    assert slugs == {"acme"}
    by_id = api_as(org.admin).get(f"/api/v1/teams/?parent_id={org.alpha.pk}").json()["results"]
    assert [t["slug"] for t in by_id] == ["alpha-sub"]


@pytest.mark.parametrize("url", ["/api/v1/runs/?pipeline=a%00b", "/api/v1/teams/a%00b/"])
def test_a_nul_character_is_a_400_not_a_500(org, url):
    response = api_as(org.admin).get(url)
    assert response.status_code == 400
    assert response.json()["code"] == "ValidationError"


def test_an_api_url_that_matches_no_route_answers_with_the_error_shape(org):
    response = api_as(org.admin).get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"]


def test_every_operation_documents_its_error_answers(schema):
    missing = []
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            wanted = {"400", "401", "403", "404"} | ({"409"} if method != "get" else set())
            for status in wanted:
                response = operation["responses"].get(status)
                ref = (response or {}).get("content", {}).get("application/json", {})
                if ref.get("schema", {}).get("$ref") != "#/components/schemas/Error":
                    missing.append(f"{method.upper()} {path} {status}")
    assert not missing, missing


def test_the_schema_documents_what_the_list_answers_are(schema):
    paths = schema["paths"]
    inbox = paths["/api/v1/approvals/inbox/"]["get"]["responses"]["200"]
    ref = inbox["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("PaginatedApprovalRequestOutputList")
    timeline = paths["/api/v1/incidents/{id}/timeline/"]["get"]["responses"]["200"]
    assert timeline["content"]["application/json"]["schema"]["type"] == "array"
    components = schema["components"]["schemas"]
    assert components["TeamOutput"]["properties"]["parent"].get("nullable")
    assigned_to = components["IncidentOutput"]["properties"]["assigned_to"]
    assert assigned_to.get("nullable") or {"type": "null"} in assigned_to.get("oneOf", [])
    page = next(p for p in paths["/api/v1/teams/"]["get"]["parameters"] if p["name"] == "page")
    assert page["schema"]["minimum"] == 1
    role = components["MembershipRoleInputRequest"]
    assert role["required"] == ["role"], "a PATCH of a membership needs its role"


def test_the_sla_of_an_asset_without_one_has_the_documented_shape(org):
    response = api_as(org.admin).get("/api/v1/assets/catalog/sla/")
    assert response.status_code == 200
    body = response.json()
    assert body["enforce_schema"] is True, "with no SLA the schema contract is enforced"
    assert body["min_rows"] is None and body["column_max_null_rates"] == {}


def test_a_deprecation_documents_its_required_reason(schema):
    operation = schema["paths"]["/api/v1/versions/{id}/deprecate/"]["post"]
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    component = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert component["required"] == ["reason"]
    assert component["properties"]["reason"]["minLength"] == 1
