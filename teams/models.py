"""The organization: a tree of teams, their members with roles, and RACI responsibilities."""

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from teams.choices import RaciKind, Role
from teams.constants import AREA_MAX_LENGTH


class Team(models.Model):
    """A team in the organization tree. A team without a parent is an organization root.

    The slug is immutable: it names the team's permission groups and its URLs.
    """

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, unique=True)
    description = models.TextField(blank=True)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    archived = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [
            ("manage_team", "Manage the team: members, roles, responsibilities, sub-teams"),
            ("upload_data_team", "Upload dataset versions of the team's data assets"),
            ("steward_data_team", "Edit the team's data assets and SLAs; handle their incidents"),
            ("run_pipeline_team", "Request, cancel and retry runs of the team's pipelines"),
        ]
        constraints = [
            models.CheckConstraint(condition=~Q(parent=models.F("id")), name="team_not_own_parent"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.pk and self.parent_id == self.pk:
            raise ValidationError({"parent": "A team cannot be its own parent."})


class Membership(models.Model):
    """A user's role in one team. A user may belong to several teams with different roles."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["team__name", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["user", "team"], name="membership_unique_user_team"),
        ]
        indexes = [models.Index(fields=["team", "role"])]

    def __str__(self) -> str:
        return f"{self.user} · {self.get_role_display()} of {self.team}"


class Responsibility(models.Model):
    """A person's R, A, C or I on a governed subject or on a named area of a team.

    `team` is the owning team of the subject (or the team the area belongs to). At most one
    accountable (A) exists per subject and per area; the A is a member of `team`.
    """

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="responsibilities")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="responsibilities"
    )
    kind = models.CharField(max_length=1, choices=RaciKind.choices)
    subject_type = models.ForeignKey(
        ContentType, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    subject_id = models.PositiveBigIntegerField(null=True, blank=True)
    subject = GenericForeignKey("subject_type", "subject_id")
    area = models.CharField(max_length=AREA_MAX_LENGTH, blank=True)
    note = models.CharField(max_length=240, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["team__name", "area", "kind"]
        verbose_name_plural = "responsibilities"
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(subject_type__isnull=False, subject_id__isnull=False, area="")
                    | (Q(subject_type__isnull=True, subject_id__isnull=True) & ~Q(area=""))
                ),
                name="responsibility_subject_xor_area",
            ),
            models.UniqueConstraint(
                fields=["subject_type", "subject_id"],
                condition=Q(kind="A", subject_type__isnull=False),
                name="responsibility_one_accountable_per_subject",
            ),
            models.UniqueConstraint(
                fields=["team", "area"],
                condition=Q(kind="A", subject_type__isnull=True),
                name="responsibility_one_accountable_per_area",
            ),
            models.UniqueConstraint(
                fields=["user", "kind", "subject_type", "subject_id"],
                condition=Q(subject_type__isnull=False),
                name="responsibility_unique_subject_assignment",
            ),
            models.UniqueConstraint(
                fields=["user", "kind", "team", "area"],
                condition=Q(subject_type__isnull=True),
                name="responsibility_unique_area_assignment",
            ),
        ]
        indexes = [models.Index(fields=["subject_type", "subject_id"])]

    def __str__(self) -> str:
        return f"{self.kind} · {self.user} · {self.subject_label}"

    @property
    def subject_label(self) -> str:
        """The subject's name, or the area with its team. Needs `subject` prefetched in lists."""
        if self.area:
            return f"{self.area} ({self.team})"
        return str(self.subject) if self.subject is not None else "(deleted subject)"


class Notification(models.Model):
    """An in-app notification; `emailed_at` is set once the e-mail copy was sent (by a task)."""

    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    subject = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    link = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["recipient", "read_at"])]

    def __str__(self) -> str:
        return f"to {self.recipient}: {self.subject}"


# Direct foreign-key object-permission tables (django-guardian): indexed lookups, and deleting
# a team cascades its grants, so no orphaned permissions are left behind.


class TeamUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(Team, on_delete=models.CASCADE)


class TeamGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Team, on_delete=models.CASCADE)
