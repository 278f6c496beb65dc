"""Demo: the smallest workflow, with logging and the context proxy."""

import logging

from bifrost import context, workflow

logger = logging.getLogger(__name__)


@workflow(category="Getting Started", tags=["demo"], is_tool=True, time_saved=1)
async def hello_world(name: str = "World", excited: bool = False) -> dict:
    """Greet someone by name.

    Args:
        name: Who to greet.
        excited: End with an exclamation mark.
    """
    logger.info("Greeting %s for %s", name, context.email)
    print(f"hello from a worker process, execution {context.execution_id}")
    greeting = f"Hello, {name}{'!' if excited else '.'}"
    return {"greeting": greeting, "org": context.org_name, "scope": context.scope}
