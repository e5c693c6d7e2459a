"""Every state change of governance. One module per area; import from here."""

from governance.services.approvals import (
    approval_cancel,
    approval_decide,
    approval_request_open,
    approvals_escalate_overdue,
    approvals_expire_due,
)
from governance.services.assets import assetsla_update, dataasset_create, dataasset_update
from governance.services.incidents import (
    incident_acknowledge,
    sla_evaluate_asset,
    slas_evaluate_all,
)
from governance.services.policies import approvalpolicy_set
from governance.services.versions import (
    dataset_version_deprecate,
    dataset_version_profile,
    dataset_version_submit,
    dataset_version_upload,
)

__all__ = [
    "approval_cancel",
    "approval_decide",
    "approval_request_open",
    "approvalpolicy_set",
    "approvals_escalate_overdue",
    "approvals_expire_due",
    "assetsla_update",
    "dataasset_create",
    "dataasset_update",
    "dataset_version_deprecate",
    "dataset_version_profile",
    "dataset_version_submit",
    "dataset_version_upload",
    "incident_acknowledge",
    "sla_evaluate_asset",
    "slas_evaluate_all",
]
