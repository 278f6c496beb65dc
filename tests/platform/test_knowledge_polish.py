"""Issue 19, the knowledge page: uploads default to a namespace that exists, search lists no passage
pointing away from the question (negative score), the cache figures are folded away."""

from __future__ import annotations

import re

from tests.platform.conftest import World
from tests.platform.test_knowledge_page import logged_in

TEXTS = {
    "wifi": "Restart the office Wi-Fi access point from the controller page when clients cannot connect.",
    "payroll": "Payroll runs on the 25th; late expense claims move to the next month's payroll.",
    "printer": "To clear a printer jam open tray two, remove the paper and close the tray.",
    "holiday": "Public holidays in the calendar are days off for every employee in the office.",
}


def test_namespace_default_search_scores_and_folded_cache(world: World) -> None:
    with world.server.client(world.admin_key) as api:
        for key, text in TEXTS.items():
            stored = api.post("/api/knowledge/documents", json={"content": text, "namespace": "runbooks", "key": key})
            assert stored.status_code == 201, stored.text
        everything = api.post(
            "/api/knowledge/search", json={"query": "wireless network is down", "namespaces": "runbooks", "limit": 10}
        ).json()
    with logged_in(world, "admin@test.io", "admin-password") as admin:
        page = admin.get("/knowledge").text
        found = admin.get("/knowledge", params={"q": "wireless network is down", "ns": "", "limit": "10"}).text
    # the upload and paste forms propose the namespace that exists, not "default"
    assert re.search(r'id="upload-ns" name="namespace"[^>]*value="runbooks"', page)
    assert re.search(r'id="paste-ns" name="namespace"[^>]*value="runbooks"', page)
    # the server's cache figures are inside a closed <details>
    details = re.search(r'<details class="muted" id="knowledge-server">(.*?)</details>', page, re.S)
    assert details and 'id="knowledge-cache"' in details.group(1)
    # only passages with a positive score are listed; the others are counted
    shown = [float(s) for s in re.findall(r'<strong class="score"[^>]*>(-?[\d.]+)</strong>', found)]
    positive = [d for d in everything if d["score"] > 0]
    assert shown and all(score > 0 for score in shown) and len(shown) == len(positive)
    hidden = len(everything) - len(positive)
    if hidden:
        assert f"{hidden} unrelated passage" in found
    else:
        assert 'id="search-hidden"' not in found
