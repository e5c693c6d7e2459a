from rest_framework.routers import DefaultRouter

from governance.api.views import (
    ApprovalPolicyViewSet,
    ApprovalRequestViewSet,
    AuditEventViewSet,
    DataAssetViewSet,
    DatasetVersionViewSet,
    IncidentViewSet,
)

router = DefaultRouter()
router.register("assets", DataAssetViewSet, basename="asset")
router.register("versions", DatasetVersionViewSet, basename="version")
router.register("approvals", ApprovalRequestViewSet, basename="approval")
router.register("policies", ApprovalPolicyViewSet, basename="policy")
router.register("incidents", IncidentViewSet, basename="incident")
router.register("audit-events", AuditEventViewSet, basename="auditevent")

urlpatterns = router.urls
