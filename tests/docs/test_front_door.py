"""Issue #20 item 1: `/` is a front door, and the admin's "View site" leads there."""

import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

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


def test_make_run_ends_with_what_to_try_next_and_a_key_that_works(client, settings):
    """`make run` prints this (demo_next_steps) just before the server starts."""
    call_command("seed_demo", "--skus", "10", "--warehouses", "3", "--no-progress",
                 stdout=io.StringIO())  # fmt: skip
    settings.DEBUG = True
    out = io.StringIO()
    call_command("demo_next_steps", stdout=out)
    text = out.getvalue()
    for url in ("http://127.0.0.1:8000/", "/admin/", "/api/docs/", "/health/ready"):
        assert url in text, url
    assert "admin / stockroom-demo" in text and "DEMO-000000" in text
    [key] = [line.split("=", 1)[1] for line in text.splitlines() if line.strip().startswith("KEY=")]
    [curl] = [line.strip() for line in text.splitlines() if line.strip().startswith("curl ")]
    path = curl.rsplit("http://127.0.0.1:8000", 1)[1]
    answer = client.get(path, HTTP_AUTHORIZATION=f"Token {key}")
    assert answer.status_code == 200 and answer.json()["available"] == 14
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    run = makefile.split("\nrun:", 1)[1].split("\n\n", 1)[0].splitlines()
    assert "demo_next_steps" in run[-2] and "runserver" in run[-1]


def test_demo_next_steps_refuses_without_debug(settings, db):
    settings.DEBUG = False
    with pytest.raises(CommandError):
        call_command("demo_next_steps", stdout=io.StringIO())
