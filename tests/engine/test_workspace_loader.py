"""Importing a workspace: module names, imports between files, broken files, duplicates."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.engine.pool import WorkerPool, scan_workspace
from app.engine.workspace_loader import get_definition, load_workspace, module_name_for, unload_workspace
from bifrost import _registry

from .conftest import PoolFactory, make_job, write_workspace

pytestmark = pytest.mark.timeout(60)

HELLO = """
    import logging
    from bifrost import workflow

    log = logging.getLogger(__name__)

    @workflow
    async def hello(name: str = "world") -> str:
        return f"hello {name}"
"""


@pytest.fixture(autouse=True)
def isolated_registry() -> Iterator[None]:
    """Loading in this process must not leak modules or registrations into other tests."""
    saved = list(_registry._definitions)
    yield
    unload_workspace()
    _registry._definitions[:] = saved


def test_files_become_workspace_modules_named_after_their_path(tmp_path: Path) -> None:
    write_workspace(
        tmp_path,
        {
            "hello.py": HELLO,
            "billing/invoices.py": HELLO.replace("def hello", "def invoice"),
            "billing/__init__.py": "",
            "ops/deep/tool.py": HELLO.replace("def hello", "def tool"),
        },
    )

    scan = load_workspace(tmp_path)

    assert scan.errors == []
    by_name = {w["name"]: w for w in scan.workflows}
    assert by_name["hello"]["module"] == "workspace.hello"
    assert by_name["hello"]["source_file"] == "hello.py"
    assert by_name["invoice"]["module"] == "workspace.billing.invoices"
    assert by_name["invoice"]["source_file"] == "billing/invoices.py"
    assert by_name["tool"]["module"] == "workspace.ops.deep.tool"
    assert sys.modules["workspace.hello"].log.name == "workspace.hello"
    assert module_name_for("billing/__init__.py") == "workspace.billing"


def test_files_import_each_other_and_each_runs_once(tmp_path: Path) -> None:
    write_workspace(
        tmp_path,
        {
            "_helpers.py": """
                CALLS = []
                CALLS.append("imported")
                def greet(name): return f"hi {name}"
            """,
            "shared/__init__.py": "",
            "shared/text.py": "def shout(s): return s.upper()\n",
            "a.py": """
                import _helpers
                from shared.text import shout
                from bifrost import workflow

                @workflow
                async def a() -> str:
                    return shout(_helpers.greet("a"))
            """,
            "b.py": """
                import a
                import _helpers
                from bifrost import workflow

                @workflow
                async def b() -> int:
                    return len(_helpers.CALLS)
            """,
        },
    )

    scan = load_workspace(tmp_path)

    assert scan.errors == []
    assert sorted(w["name"] for w in scan.workflows) == ["a", "b"]
    # `import _helpers` and `import a` resolve to the canonical modules: executed once, registered once.
    assert sys.modules["_helpers"] is sys.modules["workspace._helpers"]
    assert sys.modules["shared.text"] is sys.modules["workspace.shared.text"]
    assert sys.modules["workspace._helpers"].CALLS == ["imported"]
    assert "workspace._helpers" in sys.modules and get_definition("workflow", "a") is not None


def test_a_root_init_file_is_the_workspace_package(tmp_path: Path) -> None:
    write_workspace(
        tmp_path,
        {
            "__init__.py": "SETTING = 'from init'\n",
            "a.py": """
                from workspace import SETTING
                from bifrost import workflow

                @workflow
                async def a() -> str:
                    return SETTING
            """,
        },
    )

    scan = load_workspace(tmp_path)

    assert scan.errors == []
    assert [w["name"] for w in scan.workflows] == ["a"]
    assert sys.modules["workspace"].SETTING == "from init"


def test_workspace_files_do_not_shadow_installed_modules(tmp_path: Path) -> None:
    write_workspace(
        tmp_path, {"json.py": "VALUE = 'workspace json'\n", "uses.py": "import json\nKIND = json.dumps([1])\n"}
    )

    scan = load_workspace(tmp_path)

    assert scan.errors == []
    assert sys.modules["json"].__name__ == "json"
    assert sys.modules["workspace.uses"].KIND == "[1]"
    assert sys.modules["workspace.json"].VALUE == "workspace json"


def test_private_hidden_and_cache_folders_are_skipped(tmp_path: Path) -> None:
    broken = "raise RuntimeError('must not be imported')\n"
    write_workspace(
        tmp_path,
        {
            "hello.py": HELLO,
            "_private.py": broken,
            ".hidden.py": broken,
            "_drafts/x.py": broken,
            ".git/hooks/y.py": broken,
            "__pycache__/z.py": broken,
            "venv/lib/w.py": broken,
            "venv/pyvenv.cfg": "",
            "notes.txt": "not python",
        },
    )

    scan = load_workspace(tmp_path)

    assert scan.errors == []
    assert [w["name"] for w in scan.workflows] == ["hello"]


def test_broken_files_are_reported_and_the_others_still_load(tmp_path: Path) -> None:
    write_workspace(
        tmp_path,
        {
            "good.py": HELLO,
            "syntax.py": "def broken(:\n    pass\n",
            "raises.py": """
                from bifrost import workflow

                @workflow
                async def half_defined() -> None: ...

                raise RuntimeError("cannot reach the CMDB\\nsecond line")
            """,
            "baddef.py": """
                from bifrost import workflow

                @workflow
                def not_async() -> None: ...
            """,
            "uses_broken.py": "import raises\n",
        },
    )

    scan = load_workspace(tmp_path)

    errors = {e["file"]: e for e in scan.errors}
    assert sorted(errors) == ["baddef.py", "raises.py", "syntax.py", "uses_broken.py"]
    assert errors["syntax.py"]["error"] == "SyntaxError: invalid syntax (line 1)"
    assert errors["raises.py"]["error"] == "RuntimeError: cannot reach the CMDB"
    assert "raises.py" in errors["raises.py"]["traceback"] and "second line" in errors["raises.py"]["traceback"]
    assert "importlib" not in errors["raises.py"]["traceback"]
    assert errors["baddef.py"]["error"].startswith("WorkflowDefinitionError:")
    assert "async def" in errors["baddef.py"]["error"]
    assert [w["name"] for w in scan.workflows] == ["hello"]
    # A workflow registered before its file failed is not runnable.
    assert get_definition("workflow", "half_defined") is None


def test_duplicate_names_are_reported_and_neither_is_available(tmp_path: Path) -> None:
    write_workspace(
        tmp_path,
        {
            "a.py": HELLO.replace("def hello", "def same"),
            "b.py": HELLO.replace("def hello", "def same"),
            "c.py": """
                from bifrost import data_provider, workflow

                @workflow(name="twice")
                async def first() -> None: ...

                @workflow(name="twice")
                async def second() -> None: ...

                @data_provider(name="same")
                async def same_name_other_kind() -> list: return []

                @workflow
                async def redefined() -> int: return 1

                @workflow
                async def redefined() -> int: return 2
            """,
            "d.py": HELLO,
        },
    )

    scan = load_workspace(tmp_path)

    messages = sorted(e["error"] for e in scan.errors)
    assert len(messages) == 3
    assert "'redefined'" in messages[0] and "c.py line 13" in messages[0] and "c.py line 16" in messages[0]
    assert "'same'" in messages[1] and "a.py" in messages[1] and "b.py" in messages[1]
    assert "'twice'" in messages[2] and "first" in messages[2] and "second" in messages[2]
    assert [w["name"] for w in scan.workflows] == ["hello"]
    assert [d["name"] for d in scan.data_providers] == ["same"]  # another kind may share the name
    assert get_definition("workflow", "same") is None
    assert get_definition("workflow", "twice") is None
    assert _registry.get("same", "workflow") is None


def test_reloading_in_the_same_process_sees_edits(tmp_path: Path) -> None:
    write_workspace(tmp_path, {"hello.py": HELLO})
    load_workspace(tmp_path)
    write_workspace(tmp_path, {"hello.py": HELLO.replace("def hello", "def howdy")})

    scan = load_workspace(tmp_path)

    assert [w["name"] for w in scan.workflows] == ["howdy"]


def test_a_file_hanging_at_import_is_reported_after_the_timeout(tmp_path: Path) -> None:
    write_workspace(tmp_path, {"hello.py": HELLO, "slow.py": "import time\ntime.sleep(30)\n"})

    scan = load_workspace(tmp_path, import_timeout=0.3)

    assert [e["file"] for e in scan.errors] == ["slow.py"]
    assert "longer than 0.3 seconds" in scan.errors[0]["error"]
    assert [w["name"] for w in scan.workflows] == ["hello"]


async def test_scan_runs_in_a_separate_process_and_ignores_printed_output(tmp_path: Path) -> None:
    write_workspace(tmp_path, {"hello.py": HELLO + "    print('noise at import')\n", "bad.py": "x = (\n"})
    scan = await scan_workspace(tmp_path)

    assert [w["name"] for w in scan.workflows] == ["hello"]
    assert [e["file"] for e in scan.errors] == ["bad.py"]
    assert "workspace.hello" not in sys.modules


async def test_pool_reports_broken_and_duplicate_files_and_runs_the_rest(
    make_pool: PoolFactory, tmp_path: Path
) -> None:
    workspace = write_workspace(
        tmp_path / "ws",
        {
            "good.py": HELLO,
            "syntax.py": "def broken(:\n",
            "a.py": HELLO.replace("def hello", "def same"),
            "b.py": HELLO.replace("def hello", "def same"),
        },
    )
    pool: WorkerPool = await make_pool(workspace)

    assert (await pool.run(make_job("hello", {"name": "ops"}))).result == "hello ops"
    duplicate = await pool.run(make_job("same"))
    assert duplicate.status == "Failed" and duplicate.error_type == "NotFound"
    assert pool.last_scan is not None
    assert sorted(e["file"] for e in pool.last_scan.errors) == ["a.py", "syntax.py"]
    scan = await pool.scan()
    assert [w["name"] for w in scan.workflows] == ["hello"]
    assert scan.errors == pool.last_scan.errors
