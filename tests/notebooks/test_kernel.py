"""``%load_ext bifrost`` on a real kernel: trial runs, context across cells, forms, publish rules, offline mode."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from nbclient import NotebookClient
from nbclient.util import ensure_async

from tests.notebooks.conftest import (
    KERNEL_TIMEOUT_SECONDS,
    code_notebook,
    errors_of,
    execute,
    html_of,
    kernel_env,
    text_of,
)
from tests.platform.conftest import World

PROBE = '''
import logging

import bifrost
from bifrost import context, workflow
from bifrost._client import call

logger = logging.getLogger("probe")


@workflow(category="Probe")
async def kernel_probe(n: int, label: str = "x") -> list[dict]:
    """Probe the run's context.

    Args:
        n: How many rows.
        label: A label.
    """
    logger.info("probing %s", label)
    print("printed by the probe")
    me = await call("GET", "/context")  # an SDK call: crosses the SDK API with the run's token
    return [{"i": i, "label": label, "email": context.email, "org": context.org_name,
             "sdk_execution": me["execution_id"], "context_execution": context.execution_id} for i in range(n)]


@workflow
async def kernel_fails() -> None:
    raise ValueError("exploded in the kernel")
'''


def test_a_trial_run_is_a_real_execution_of_the_user_and_non_admins_cannot_publish(
    world: World, tmp_path: Path
) -> None:
    nb = code_notebook(
        "%load_ext bifrost\n%bifrost connect",
        PROBE,
        "%bifrost run kernel_probe n=2 label=first",
        "from bifrost import context\n(context.email, context.org_name, context.execution_id)",
        "failed = await bifrost_run('kernel_fails')\nfailed",
        "form = %bifrost form kernel_probe\nform.fields['n'].value = '3'\nform.button.click()\n"
        "clicked = await form.last_run\nclicked.result",
        "%bifrost publish kernel_probe",
        "%bifrost run kernel_probe n=nope",
        "import httpx\nshared = httpx.AsyncClient()\n\n@workflow\nasync def uses_shared() -> int:\n"
        "    return (await shared.get('http://127.0.0.1:1')).status_code\n",
        "%bifrost publish uses_shared",
        # What the HTML form's Submit runs in the kernel (classic Notebook): the form's text values.
        "from notebooks.forms import submit_from_html\n"
        'html_run = submit_from_html(\'kernel_probe\', \'{"n": "1", "label": ""}\')',
    )
    nb = execute(nb, kernel_env(world.server.url, world.alice_key), tmp_path, allow_errors=True)
    cells = nb.cells
    assert "as alice@a.example (Org A)" in text_of(cells[0])

    trial = text_of(cells[2])
    assert "INFO    probe: probing first" in trial and "printed by the probe" in trial
    table = html_of(cells[2])
    assert "<table>" in table and table.count("alice@a.example") == 2

    # Between runs the context still answers (kernel-wide fallback), with no execution bound.
    assert text_of(cells[3]) == "('alice@a.example', 'Org A', '')"
    assert "Failed" in text_of(cells[4]) and "exploded in the kernel" in html_of(cells[4])
    assert "'label': 'x'" in text_of(cells[5]) and text_of(cells[5]).count("'i'") == 3  # the widget form ran it
    assert "UsageError: PermissionDeniedError: Only platform admins may publish" in text_of(cells[6])
    assert "UsageError: ValidationError: Invalid parameters: n:" in text_of(cells[7])
    assert (
        "'shared' holds an object of type httpx.AsyncClient that was made in the notebook, and a module cannot "
        "recreate it: create it inside the function (e.g. `shared = httpx.AsyncClient(...)` in its body)"
    ) in text_of(cells[9])
    assert "kernel_probe: Completed" in text_of(cells[10]) and "'label': 'x'" in text_of(cells[10])  # blank: default

    # The platform's history: Alice's notebook runs, with the logs her kernel shipped.
    with world.server.client(world.alice_key) as alice:
        runs = alice.get("/api/executions", params={"workflow_name": "kernel_probe"}).json()
        assert [r["trigger"] for r in runs] == ["notebook", "notebook", "notebook"]
        first = runs[-1]
        assert first["status"] == "Completed" and first["org_id"] == world.org_a
        assert first["input_data"] == {"n": 2, "label": "first"}
        result = first["result"]
        assert {r["sdk_execution"] for r in result} == {first["execution_id"]}  # SDK calls carried its token
        assert {r["context_execution"] for r in result} == {first["execution_id"]}
        logs = alice.get(f"/api/executions/{first['execution_id']}/logs").json()
        assert [(line["logger"], line["message"]) for line in logs] == [
            ("probe", "probing first"),
            ("stdout", "printed by the probe"),
        ]
        failed = alice.get("/api/executions", params={"workflow_name": "kernel_fails"}).json()
        assert [f["status"] for f in failed] == ["Failed"]
        assert alice.get("/api/workflows/kernel_probe").status_code == 404  # never published
    with world.server.client(world.bob_key) as bob:  # another organization sees none of it
        assert bob.get("/api/executions", params={"workflow_name": "kernel_probe"}).json() == []
    assert not (world.server.settings.workspace / "kernel_probe.py").exists()


def test_publish_writes_the_imports_and_helpers_the_function_needs(world: World, tmp_path: Path) -> None:
    nb = code_notebook(
        "%load_ext bifrost\n%bifrost connect",
        "import datetime as dt\nimport logging\nfrom enum import Enum\n\nfrom pydantic import BaseModel\n"
        "from bifrost import workflow as wf, context\n\nlog = logging.getLogger(__name__)\nRATES = {'gold': 3, 'std': 1}\n",
        "class Tier(str, Enum):\n    GOLD = 'gold'\n    STD = 'std'\n\n\n"
        "class Order(BaseModel):\n    qty: int\n\n\ndef points(tier: Tier, qty: int) -> int:\n    return RATES[tier.value] * qty\n",
        "@wf(category='Published')\nasync def loyalty(order: Order, tier: Tier = Tier.STD) -> dict:\n"
        '    """Loyalty points.\n\n    Args:\n        order: The order.\n        tier: Customer tier.\n    """\n'
        "    log.info('points for %s', tier.value)\n"
        "    return {'points': points(tier, order.qty), 'year': dt.date(2030, 1, 1).year, 'org': context.org_name}\n",
        "trial = await bifrost_run('loyalty', order={'qty': 4}, tier='gold')\nassert trial.result['points'] == 12\n"
        "trial.result",
        "%bifrost publish loyalty --file loyalty/points.py",
    )
    nb = execute(nb, kernel_env(world.server.url, world.admin_key), tmp_path, allow_errors=True)
    assert errors_of(nb) == []
    assert "Published workflow 'loyalty' as loyalty/points.py" in text_of(nb.cells[5])
    source = (world.server.settings.workspace / "loyalty" / "points.py").read_text()
    for expected in (
        "import datetime as dt",
        # sorted and formatted as the project's ruff settings say (bifrost is first party: last)
        "from pydantic import BaseModel\n\nfrom bifrost import context\nfrom bifrost import workflow as wf\n",
        "log = logging.getLogger(__name__)",
        'RATES = {"gold": 3, "std": 1}',
        "class Tier(str, Enum):",
        "def points(tier: Tier, qty: int) -> int:",
    ):
        assert expected in source, expected
    assert source.index("class Tier") < source.index("def points") < source.index("async def loyalty")
    with world.server.client(world.alice_key) as alice:
        done = alice.post(
            "/api/workflows/loyalty/execute?wait=true", json={"params": {"order": {"qty": 5}, "tier": "gold"}}
        )
    assert done.status_code == 200, done.text
    assert done.json()["result"] == {"points": 15, "year": 2030, "org": "Org A"}


def test_without_a_url_the_kernel_starts_an_embedded_platform(tmp_path: Path) -> None:
    nb = code_notebook(
        "%load_ext bifrost\n%bifrost connect",
        "from bifrost import workflow\n\n@workflow\nasync def offline_hello(name: str) -> str:\n"
        "    return f'Hello {name}'\n",
        "%bifrost run offline_hello name=Ada",
        "%bifrost publish offline_hello",
        "import bifrost\nfrom notebooks import session\nroot = session.current().embedded.root\n"
        "done = await bifrost.workflows.execute('offline_hello', {'name': 'Grace'})\n"
        "(done.status, done.result, (root / 'workspace' / 'offline_hello.py').exists())",
        "%bifrost disconnect\nroot.exists()",
    )
    nb = execute(nb, kernel_env(None, None), tmp_path, allow_errors=True)
    assert errors_of(nb) == []
    assert "Connected to embedded platform at http://127.0.0.1:" in text_of(nb.cells[0])
    assert "Completed" in text_of(nb.cells[2]) and "Hello Ada" in text_of(nb.cells[2])
    assert text_of(nb.cells[4]) == "('Completed', 'Hello Grace', True)"
    assert text_of(nb.cells[5]).endswith("False")  # disconnecting stopped it and removed its folder


def test_interrupting_the_kernel_cancels_the_run(world: World, tmp_path: Path) -> None:
    nb = code_notebook(
        "%load_ext bifrost\n%bifrost connect",
        "import asyncio\nfrom bifrost import workflow\n\n@workflow\nasync def sleeps_long() -> str:\n"
        "    print('sleeping')\n    await asyncio.sleep(600)\n    return 'woke'\n",
        "run = %bifrost run sleeps_long",
        "run",
    )
    # Interrupt as a user would once the run is under way: when its first line has reached the platform
    # (lines are shipped live), not when a fixed cell timeout runs out. A timeout now fails the test.
    client = NotebookClient(nb, timeout=KERNEL_TIMEOUT_SECONDS, kernel_name="python3", allow_errors=True)
    watchers: list[asyncio.Task[None]] = []

    async def interrupt_once_sleeping() -> None:
        headers = {"Authorization": f"Bearer {world.bob_key}"}
        async with httpx.AsyncClient(base_url=world.server.url, headers=headers, timeout=30) as bob:
            while True:
                runs = (await bob.get("/api/executions", params={"workflow_name": "sleeps_long"})).json()
                if runs:
                    logs = (await bob.get(f"/api/executions/{runs[0]['execution_id']}/logs")).json()
                    if [line["message"] for line in logs] == ["sleeping"]:
                        break
                await asyncio.sleep(0.05)
        assert client.km is not None  # the kernel is running: a cell is executing
        await ensure_async(client.km.interrupt_kernel())

    def on_cell_execute(cell: Any, cell_index: int) -> None:
        if cell_index == 2:  # `%bifrost run sleeps_long`; the watcher runs on nbclient's loop beside the cell
            watchers.append(asyncio.ensure_future(interrupt_once_sleeping()))

    client.on_cell_execute = on_cell_execute
    client.execute(env=kernel_env(world.server.url, world.bob_key), cwd=str(tmp_path))
    assert [watcher.done() and watcher.exception() is None for watcher in watchers] == [True]
    assert "sleeps_long: Cancelled" in text_of(nb.cells[3]) and "Interrupted in the notebook" in text_of(nb.cells[3])
    with world.server.client(world.bob_key) as bob:
        runs = bob.get("/api/executions", params={"workflow_name": "sleeps_long"}).json()
        assert [(r["status"], r["error_message"]) for r in runs] == [("Cancelled", "Interrupted in the notebook")]
        logs = bob.get(f"/api/executions/{runs[0]['execution_id']}/logs").json()
    assert [line["message"] for line in logs] == ["sleeping"]
