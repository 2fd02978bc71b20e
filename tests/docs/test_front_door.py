"""Issue #20 item 1: `/` is a front door, and the admin's "View site" leads there."""

import io

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db

LINKS = ['href="/admin/"', 'href="/api/docs/"', 'href="/api/schema/"',
         'href="/health/live"', 'href="/health/ready"']  # fmt: skip


def test_the_front_door_links_everywhere_and_hides_the_demo_without_debug(client, settings):
    settings.DEBUG = False
    response = client.get("/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Stockroom" in page
    for link in LINKS:
        assert link in page, link
    assert "stockroom-demo" not in page and "DEMO-000000" not in page


def test_with_debug_it_shows_the_demo_logins_and_skus(client, settings):
    call_command("seed_demo", "--skus", "10", "--warehouses", "3", "--no-progress",
                 stdout=io.StringIO())  # fmt: skip
    settings.DEBUG = True
    page = client.get("/").content.decode()
    assert "stockroom-demo" in page and "<code>admin</code>" in page
    for sku, name in [("DEMO-000000", "Classic T-shirt, size M"), ("DEMO-000002", "Stoneware mug")]:
        assert sku in page and name in page
    assert "<code>BER</code>" in page and "<code>HAM</code>" in page
    assert "create_api_client" in page  # a first call with a fresh key
    for link in LINKS:
        assert link in page, link


def test_the_front_door_only_reads(client):
    assert client.post("/").status_code == 405


def test_view_site_in_the_back_office_goes_to_the_front_door(admin_client):
    page = admin_client.get("/admin/").content.decode()
    assert '<a href="/">View site</a>' in page
    assert admin_client.get("/").status_code == 200
