"""Numbers of governance used in more than one place."""

DEFAULT_APPROVER_ROLES = ["steward", "lead"]
# Kinds whose default approvers differ: activating an index is the owning team lead's call.
DEFAULT_APPROVER_ROLES_BY_KIND = {"index_activation": ["lead"]}
DEFAULT_QUORUM = 1
MAX_UPLOAD_BYTES_DEFAULT = 1024**3  # 1 GiB; settings.STEWARD_MAX_UPLOAD_BYTES
UPLOAD_CHUNK_BYTES = 1024 * 1024
# Room in an upload's request body for the form's other fields and the multipart framing: a
# body declared longer than the limit plus this is refused before it is read.
UPLOAD_FORM_OVERHEAD_BYTES = 16 * 1024
ESCALATION_LEVELS = 2  # 1: the owning team's leads, 2: the parent team's leads
INBOX_PAGE_SIZE = 25
AUDIT_PAGE_SIZE = 50
