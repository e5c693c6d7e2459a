"""django-filter FilterSets for the organization API (restriction happens before filtering)."""

import django_filters

from teams.choices import RaciKind, Role
from teams.models import Membership, Responsibility, Team


class TeamFilterSet(django_filters.FilterSet):
    parent = django_filters.CharFilter(field_name="parent__slug", label="Parent team slug")
    parent_id = django_filters.NumberFilter(field_name="parent_id")
    name = django_filters.CharFilter(lookup_expr="icontains")
    root = django_filters.BooleanFilter(
        field_name="parent", lookup_expr="isnull", label="Roots only"
    )

    class Meta:
        model = Team
        fields = ["slug", "archived"]


class MembershipFilterSet(django_filters.FilterSet):
    team = django_filters.CharFilter(field_name="team__slug")
    team_id = django_filters.NumberFilter(field_name="team_id")
    user = django_filters.CharFilter(field_name="user__username")
    user_id = django_filters.NumberFilter(field_name="user_id")
    role = django_filters.ChoiceFilter(choices=Role.choices)

    class Meta:
        model = Membership
        fields = []


class ResponsibilityFilterSet(django_filters.FilterSet):
    team = django_filters.CharFilter(field_name="team__slug")
    team_id = django_filters.NumberFilter(field_name="team_id")
    user = django_filters.CharFilter(field_name="user__username")
    user_id = django_filters.NumberFilter(field_name="user_id")
    kind = django_filters.ChoiceFilter(choices=RaciKind.choices)
    area = django_filters.CharFilter()
    subject_id = django_filters.NumberFilter()

    class Meta:
        model = Responsibility
        fields = []
