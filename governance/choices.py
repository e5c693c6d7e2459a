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


class VersionStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SUBMITTED = "submitted", "Submitted"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    SUPERSEDED = "superseded", "Superseded"
    DEPRECATED = "deprecated", "Deprecated"


class ProfileStatus(models.TextChoices):
    PENDING = "pending", "Waiting for a worker"
    RUNNING = "running", "Profiling"
    SUCCEEDED = "succeeded", "Profiled"
    FAILED = "failed", "Failed"


class ApprovalKind(models.TextChoices):
    DATASET_VERSION = "dataset_version", "Dataset version"
    PIPELINE_RUN = "pipeline_run", "Pipeline run"
    INDEX_ACTIVATION = "index_activation", "Index activation"


class ApprovalState(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired"
    CANCELLED = "cancelled", "Cancelled"


class Verdict(models.TextChoices):
    APPROVE = "approve", "Approve"
    REJECT = "reject", "Reject"


class SlaRule(models.TextChoices):
    FRESHNESS = "freshness", "Freshness"
    VOLUME = "volume", "Minimum rows"
    NULL_RATE = "null_rate", "Null rate"
    DUPLICATES = "duplicates", "Duplicate rate"
    SCHEMA = "schema", "Schema contract"
    APPROVAL_LATENCY = "approval_latency", "Approval latency"


class IncidentStatus(models.TextChoices):
    OPEN = "open", "Open"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"
