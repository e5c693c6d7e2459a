"""Enumerations of governance."""

from django.db import models


class AssetKind(models.TextChoices):
    PRODUCT_CATALOG = "product_catalog", "Product catalog"
    QUERIES = "queries", "Queries"
    RELEVANCE_LABELS = "relevance_labels", "Relevance labels"
    BEHAVIOUR_EVENTS = "behaviour_events", "Behaviour events"


class Classification(models.TextChoices):
    PUBLIC = "public", "Public"
    INTERNAL = "internal", "Internal"
    CONFIDENTIAL = "confidential", "Confidential"
    PERSONAL = "personal", "Personal data"
