"""django-filter FilterSets for the organization API (restriction happens before filtering)."""

import django_filters
from django import forms
from drf_spectacular.utils import extend_schema_field

from teams.api.inputs import MAX_ID
from teams.choices import RaciKind, Role
from teams.models import Membership, Responsibility, Team


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": MAX_ID})
class IdFilter(django_filters.Filter):
    """An id: a whole number from 1 to 2**63-1, else 400 (not a decimal up to 1e50)."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


class StrictBooleanField(forms.NullBooleanField):
    """true/false (or 1/0); anything else is a 400, not silently "no filter"."""

    def to_python(self, value):
        if value in (None, ""):
            return None
        if value in ("true", "True", "1", True):
            return True
        if value in ("false", "False", "0", False):
            return False
        raise forms.ValidationError("Use true or false.", code="invalid")

    def validate(self, value):
        pass


class StrictBooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", forms.TextInput)  # the raw value, for the field to judge
        super().__init__(*args, **kwargs)


class TeamFilterSet(django_filters.FilterSet):
    parent = django_filters.CharFilter(field_name="parent__slug", label="Parent team slug")
    parent_id = IdFilter(field_name="parent_id")
    name = django_filters.CharFilter(lookup_expr="icontains")
    archived = StrictBooleanFilter()
    root = StrictBooleanFilter(field_name="parent", lookup_expr="isnull", label="Roots only")

    class Meta:
        model = Team
        fields = ["slug"]


class MembershipFilterSet(django_filters.FilterSet):
    team = django_filters.CharFilter(field_name="team__slug")
    team_id = IdFilter(field_name="team_id")
    user = django_filters.CharFilter(field_name="user__username")
    user_id = IdFilter(field_name="user_id")
    role = django_filters.ChoiceFilter(choices=Role.choices)

    class Meta:
        model = Membership
        fields = []


class ResponsibilityFilterSet(django_filters.FilterSet):
    team = django_filters.CharFilter(field_name="team__slug")
    team_id = IdFilter(field_name="team_id")
    user = django_filters.CharFilter(field_name="user__username")
    user_id = IdFilter(field_name="user_id")
    kind = django_filters.ChoiceFilter(choices=RaciKind.choices)
    area = django_filters.CharFilter()
    subject_id = IdFilter()

    class Meta:
        model = Responsibility
        fields = []
