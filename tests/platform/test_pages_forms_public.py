"""Public forms are rate limited per client address: a 429 page with Retry-After, and nothing run."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import LiveServer, make_settings
from tests.platform.conftest import World, seed
from tests.platform.pages_support import text

LIMIT = 5


def test_public_form_pages_are_rate_limited(tmp_path: Path) -> None:
    server = LiveServer(make_settings(tmp_path, None, public_form_rate_limit_per_minute=LIMIT)).start()
    try:
        world = World(server=server, **server.call(lambda: seed(server.platform)))
        with server.client(world.admin_key) as client:
            form = client.post(
                "/api/forms",
                json={"name": "Open", "workflow_id": "cf_onboard", "access_level": "public", "organization_id": world.org_a},
            ).json()  # fmt: skip
        with httpx.Client(base_url=server.url, timeout=30) as visitor:
            pages = [visitor.get(f"/public/forms/{form['id']}") for _ in range(LIMIT - 2)]
            assert [p.status_code for p in pages] == [200] * (LIMIT - 2)
            body = {"name": "Ada", "site": "lon", "_csrf_token": visitor.cookies["csrftoken"]}
            submitted = visitor.post(f"/public/forms/{form['id']}/run", data=body)
            assert submitted.status_code == 303, submitted.text[:2000]
            # Looking at one's own run is not counted (the page polls it until it ends).
            polls = [visitor.get(submitted.headers["location"]) for _ in range(LIMIT + 2)]
            assert [p.status_code for p in polls] == [200] * (LIMIT + 2)
            assert visitor.get(f"/public/forms/{form['id']}").status_code == 200  # the last one allowed
            refused = visitor.post(f"/public/forms/{form['id']}/run", data=body)
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert "Too many requests to public forms" in text(refused.text)
        with server.client(world.admin_key) as client:
            runs = client.get("/api/executions", params={"workflow_name": "cf_onboard"}).json()
        assert len(runs) == 1  # the refused submit ran nothing
    finally:
        server.stop()
