"""factory_boy factories. Org structure (teams, memberships, RACI) is built through services in
fixtures so that groups and object permissions are real; these make plain rows."""

import factory
from django.contrib.auth import get_user_model

PASSWORD = "test-pass-123"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.test")
    first_name = factory.LazyAttribute(lambda u: u.username.split(".")[0].title())
    password = factory.django.Password(PASSWORD)


def policy_create(*, team, kind, roles, **fields):
    """A plain ApprovalPolicy row with a row per approver role (no service, no audit)."""
    from governance.models import ApprovalPolicy, ApprovalPolicyRole

    policy = ApprovalPolicy.objects.create(team=team, kind=kind, **fields)
    ApprovalPolicyRole.objects.bulk_create(
        ApprovalPolicyRole(policy=policy, role=role) for role in roles
    )
    return policy
