"""Models every app builds on: the audit trail, and the abstract governed subject."""

from django.conf import settings
from django.contrib.contenttypes.fields import GenericRelation
from django.contrib.contenttypes.models import ContentType
from django.db import models


class GovernedSubject(models.Model):
    """What a governed subject (DataAsset, Pipeline) has: a name and slug, a description, a
    creation time, and its RACI responsibilities (teams.Responsibility), held there, never as
    fields here, so a missing accountable person shows up as a gap.

    Each subclass declares its `owning_team` foreign key to teams.Team (the related name is its
    own: `team.data_assets`, `team.pipelines`) and registers with core.subjects.register().
    """

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, unique=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    responsibilities = GenericRelation(
        "teams.Responsibility", content_type_field="subject_type", object_id_field="subject_id"
    )

    class Meta:
        abstract = True
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

    def seal(self, pk: int, *, seq: int, prev_hash: str, hash: str) -> int:
        """Link one unsealed event into the chain, once: the only write an event ever gets
        (core.audit does it, under the chain's lock)."""
        unsealed = self.filter(pk=pk, seq__isnull=True)
        return models.QuerySet.update(unsealed, seq=seq, prev_hash=prev_hash, hash=hash)


class AuditEvent(models.Model):
    """One state change: who, what, on which object, before/after, chained by hash.

    `hash` covers every field and the previous event's hash, so altering or removing a row
    breaks the chain (see core.audit.verify_chain). `seq` is the event's place in the
    chain: an event is written with its transaction and sealed into the chain (seq, prev_hash,
    hash) then or just after that transaction commits; until then the three are null.
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
    seq = models.PositiveBigIntegerField(null=True, blank=True, unique=True)
    prev_hash = models.CharField(max_length=64, null=True)  # noqa: DJ001 - null until sealed
    hash = models.CharField(max_length=64, null=True, unique=True)  # noqa: DJ001

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
