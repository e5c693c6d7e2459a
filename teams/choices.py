"""Enumerations of the organization."""

from django.db import models


class Role(models.TextChoices):
    LEAD = "lead", "Lead"
    STEWARD = "steward", "Data steward"
    ENGINEER = "engineer", "ML engineer"
    OPS = "ops", "Ops"
    VIEWER = "viewer", "Viewer"


class RaciKind(models.TextChoices):
    RESPONSIBLE = "R", "Responsible"
    ACCOUNTABLE = "A", "Accountable"
    CONSULTED = "C", "Consulted"
    INFORMED = "I", "Informed"
