"""An engineer picks a file over the upload limit: the page says so before sending it (upload.js
reads the limit from the form); with JavaScript off, the server's 413 page says the same.
Nothing is stored either way."""

import pytest

from governance.models import DatasetVersion
from tests.browser.conftest import log_in
from tests.conftest import build_org
from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MESSAGE = "The upload is larger than the limit of 4 KiB. Nothing was stored."


def test_a_file_over_the_limit_is_refused_with_the_limit_named(
    chromium, live_server, settings, tmp_path
):
    settings.STEWARD_MAX_UPLOAD_BYTES = 4096
    settings.MEDIA_ROOT = tmp_path / "media"
    build_org()
    big = tmp_path / "catalog.csv"
    big.write_bytes(b"id,title\n" + b"1,a product\n" * 800)  # about 10 KB
    upload_url = f"{live_server.url}/governance/assets/catalog/upload/"

    context = chromium.new_context()
    page = log_in(context, live_server.url, "alpha.engineer", PASSWORD)
    page.goto(upload_url)
    assert "At most 4 KiB." in page.locator("#upload-form").inner_text()
    page.set_input_files("#id_file", str(big))
    page.click("button:has-text('Upload')")
    page.wait_for_function(
        "document.getElementById('upload-progress-label').textContent.includes('limit')"
    )
    assert page.locator("#upload-progress-label").inner_text() == MESSAGE
    context.close()

    no_script = chromium.new_context(java_script_enabled=False)
    page = log_in(no_script, live_server.url, "alpha.engineer", PASSWORD)
    page.goto(upload_url)
    page.set_input_files("#id_file", str(big))
    with page.expect_response(upload_url) as answer:
        page.click("button:has-text('Upload')")
    assert answer.value.status == 413
    assert page.locator("h1").inner_text() == "Upload too large"
    assert page.locator(".refusal").inner_text() == MESSAGE
    no_script.close()
    assert not DatasetVersion.objects.exists()
