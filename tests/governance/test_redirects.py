"""No open redirects (issue 11, item 8): a `next` / return URL from the request, or a stored
link, is followed only when it points to this site; anything else goes to a safe default."""

from __future__ import annotations

import pytest
from django.urls import reverse

from teams import services as team_services
from teams.models import Notification
from tests.approval_setup import request_of, upload
from tests.conftest import login

pytestmark = pytest.mark.django_db

HOSTILE = [
    "https://evil.example/phish",
    "//evil.example/phish",
    "/\\evil.example",
    "\\\\evil.example",
    "javascript:alert(1)",
    "http:evil.example",
]


@pytest.fixture
def approval(org, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return request_of(upload(org))


@pytest.mark.parametrize("target", HOSTILE)
def test_decide_and_cancel_do_not_redirect_off_site(org, client, approval, target):
    login(client, org.user("alpha.steward"))
    decide = client.post(reverse("governance:decide", args=[approval.pk]), {"next": target})
    assert decide.status_code == 302 and decide["Location"] == reverse("governance:inbox")
    login(client, org.user("alpha.engineer"))
    cancel = client.post(reverse("governance:cancel", args=[approval.pk]), {"next": target})
    assert cancel.status_code == 302 and cancel["Location"] == reverse("governance:inbox")


def test_a_return_url_of_this_site_is_kept(org, client, approval):
    back = reverse("governance:version_detail", args=[approval.subject_id])
    login(client, org.user("alpha.steward"))
    decide = client.post(reverse("governance:decide", args=[approval.pk]), {"next": back})
    assert decide["Location"] == back


@pytest.mark.parametrize("link", ["https://evil.example/phish", "//evil.example/x"])
def test_a_notification_link_off_site_is_not_followed(org, client, link):
    user = org.user("alpha.viewer")
    note = team_services.notification_send(recipient=user, subject="hello", link=link)
    login(client, user)
    response = client.post(reverse("notification_read", args=[note.pk]), {"follow": "1"})
    assert response["Location"] == reverse("notifications")
    assert Notification.objects.get(pk=note.pk).read_at is not None
