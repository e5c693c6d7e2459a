"""The version page polls while its profile runs and stops once it is final (issue 11, item 8):
the poller lives on the swapped element, and a poll of a final version is answered 286."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from governance import services
from tests.conftest import login

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def test_the_version_page_poller_stops_once_profiling_is_final(org, client, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    version = services.dataset_version_upload(
        actor=org.user("alpha.engineer"),
        asset=org.asset,
        file=SimpleUploadedFile("catalog.csv", b"id,title,price\n1,Red shoe,10.5\n2,Hat,3\n"),
        name="catalog.csv",
    )
    url = reverse("governance:version_detail", args=[version.pk])
    login(client, org.user("alpha.engineer"))
    pending = client.get(url, headers=HTMX)
    assert pending.status_code == 200
    assert 'id="version-main" hx-get=' in pending.content.decode()
    services.dataset_version_profile(version_id=version.pk)
    final = client.get(url, headers=HTMX)
    assert final.status_code == 286 and "hx-trigger" not in final.content.decode()
    assert client.get(url).status_code == 200
