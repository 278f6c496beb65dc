"""Demo: answer questions from the team's runbooks with `bifrost.knowledge` and `bifrost.ai`.

`bifrost init --demo` stores a few runbooks in the global knowledge namespace ``runbooks``
(see them on the Knowledge page). Every organization reads global knowledge; its own
documents of the same namespace come first.
"""

import logging

from bifrost import ConfigurationError, ai, knowledge, workflow

logger = logging.getLogger(__name__)

NAMESPACE = "runbooks"


@workflow(
    category="Knowledge",
    tags=["demo", "knowledge", "ai"],
    is_tool=True,
    tool_description="Answer a how-to question from the service desk runbooks.",
)
async def ask_runbooks(question: str, limit: int = 3) -> dict:
    """Answer a question from the runbooks: with the AI model when one is configured, else the passages.

    Args:
        question: What you want to know, e.g. "how do I reset an MFA device?".
        limit: How many runbook passages to consider.
    """
    # Semantic search: matches by meaning, not keywords. Each hit is a document with its
    # best-matching passage as `content` and a cosine similarity `score`.
    # min_score drops passages that are only vaguely related.
    hits = await knowledge.search(question, namespace=NAMESPACE, limit=limit, min_score=0.2)
    sources = [{"runbook": h.key, "score": round(h.score or 0, 3), "passage": h.content} for h in hits]
    if not hits:
        return {"answer": "No runbook matches this question yet.", "sources": [], "model": None}
    try:
        # knowledge=[...] lets the platform retrieve passages and put them in the prompt.
        reply = await ai.complete(
            question,
            system="You are a service desk assistant. Answer briefly, only from the runbooks provided.",
            knowledge=[NAMESPACE],
        )
    except ConfigurationError as exc:
        # No model configured (the demo default): the best passage is still a useful answer.
        logger.info("No AI model (%s): answering with the best passage", exc)
        return {"answer": hits[0].content, "sources": sources, "model": None}
    return {"answer": reply.content, "sources": sources, "model": reply.model}


@workflow(category="Knowledge", tags=["demo", "knowledge"])
async def add_runbook(key: str, content: str) -> dict:
    """Store or replace a runbook in your organization's ``runbooks`` namespace.

    Platform admins acting globally write the global namespace every organization reads.

    Args:
        key: Short stable name, e.g. "vpn-troubleshooting"; storing it again replaces it.
        content: The runbook text (plain text or Markdown).
    """
    doc_id = await knowledge.store(content, namespace=NAMESPACE, key=key, metadata={"kind": "runbook"})
    logger.info("Runbook %s stored", key)
    return {"id": doc_id, "key": key, "namespace": NAMESPACE}
