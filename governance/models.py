"""Governed objects and the audit trail."""

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models

from governance.choices import AssetKind, Classification


class DataAsset(models.Model):
    """A data set the search pipeline consumes, owned by exactly one team.

    Its accountable person is the RACI "A" held in teams.Responsibility, never a field here,
    so there is one source of truth and a missing A shows up as a gap.
    """

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, unique=True)
    kind = models.CharField(max_length=32, choices=AssetKind.choices)
    owning_team = models.ForeignKey(
        "teams.Team", on_delete=models.PROTECT, related_name="data_assets"
    )
    classification = models.CharField(
        max_length=16, choices=Classification.choices, default=Classification.INTERNAL
    )
    description = models.TextField(blank=True)
    retention_days = models.PositiveIntegerField(null=True, blank=True)
    schema_contract = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class AuditEventQuerySet(models.QuerySet):
    """Audit events are append-only: bulk updates and deletes are refused."""

    def update(self, **kwargs):
        raise PermissionError("Audit events are append-only.")

    def delete(self):
        raise PermissionError("Audit events are append-only.")

    def bulk_update(self, objs, fields, batch_size=None):
        raise PermissionError("Audit events are append-only.")


class AuditEvent(models.Model):
    """One state change: who, what, on which object, before/after, chained by hash.

    `hash` covers every field and the previous event's hash, so altering or removing a row
    breaks the chain (see governance.audit.verify_chain).
    """

    created_at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_repr = models.CharField(max_length=150)
    verb = models.CharField(max_length=80, db_index=True)
    target_type = models.ForeignKey(ContentType, on_delete=models.PROTECT, related_name="+")
    target_id = models.CharField(max_length=64)
    target_repr = models.CharField(max_length=200)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    correlation_id = models.CharField(max_length=64, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["target_type", "target_id"]),
            models.Index(fields=["created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_repr} {self.verb} {self.target_repr}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise PermissionError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("Audit events are append-only.")
