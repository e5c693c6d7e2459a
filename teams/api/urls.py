from rest_framework.routers import DefaultRouter

from teams.api.views import MembershipViewSet, ResponsibilityViewSet, TeamViewSet

router = DefaultRouter()
router.register("teams", TeamViewSet, basename="team")
router.register("memberships", MembershipViewSet, basename="membership")
router.register("responsibilities", ResponsibilityViewSet, basename="responsibility")

urlpatterns = router.urls
