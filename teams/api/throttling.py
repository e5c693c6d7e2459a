"""API throttles: DRF's per-user and per-address rate limits, with the rates read from the
settings on every request (DRF's classes read them once at import), so a deployment or a test
can change them without a restart."""

from rest_framework import throttling
from rest_framework.settings import api_settings


class _LiveRate:
    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


class UserRateThrottle(_LiveRate, throttling.UserRateThrottle):
    """Authenticated clients (token or session), per user: STEWARD_API_RATE_USER."""


class AnonRateThrottle(_LiveRate, throttling.AnonRateThrottle):
    """Anonymous requests, per address: STEWARD_API_RATE_ANON."""
