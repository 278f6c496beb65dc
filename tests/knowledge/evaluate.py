"""Measure the quality set: vector search alone, BM25 alone, and a hybrid (reciprocal rank fusion).

Run ``.venv/bin/python -m tests.knowledge.evaluate``; prints JSON. It embeds in-process with
the platform's local model (the same code the server runs) and ranks whole passages (each
passage of the set is one chunk). The hybrid is what the platform would ship if it helped:
BM25 (k1=1.2, b=0.75) and cosine ranks fused with RRF (k=60). The decision and the numbers
are recorded in ``docs/knowledge.md``.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter

import numpy as np

from tests.knowledge.quality_set import CORPUS, KEYWORD_QUERIES, QUERIES


def hit_rates(rankings: list[list[str]], expected: list[str]) -> dict[str, float]:
    """Share of queries whose answer is ranked first, and within the first three."""
    top1 = sum(r[:1] == [e] for r, e in zip(rankings, expected, strict=True)) / len(expected)
    top3 = sum(e in r[:3] for r, e in zip(rankings, expected, strict=True)) / len(expected)
    return {"top1": round(top1, 3), "top3": round(top3, 3)}


_STOP = frozenset(
    "a an and are at be by can do for from get how i in is it me my of on or the to we what when who why with you".split()
)


def _tokens(text: str) -> list[str]:
    return [t for t in re.findall(r"[a-z0-9]+", text.lower()) if t not in _STOP]


class BM25:
    """Okapi BM25 over a small corpus."""

    def __init__(self, docs: dict[str, str], k1: float = 1.2, b: float = 0.75) -> None:
        self.keys = list(docs)
        self.tfs = [Counter(_tokens(docs[k])) for k in self.keys]
        self.lengths = [sum(tf.values()) for tf in self.tfs]
        self.avg = sum(self.lengths) / len(self.lengths)
        df: Counter[str] = Counter()
        for tf in self.tfs:
            df.update(tf.keys())
        n = len(self.keys)
        self.idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}
        self.k1, self.b = k1, b

    def rank(self, query: str) -> list[str]:
        terms = _tokens(query)
        scores = []
        for tf, length in zip(self.tfs, self.lengths, strict=True):
            s = 0.0
            for t in terms:
                if t in tf:
                    f = tf[t]
                    s += self.idf[t] * f * (self.k1 + 1) / (f + self.k1 * (1 - self.b + self.b * length / self.avg))
            scores.append(s)
        # Only passages that match a term: ranking the rest (ties at zero) would add noise to a fusion.
        order = sorted((i for i in range(len(self.keys)) if scores[i] > 0), key=lambda i: -scores[i])
        return [self.keys[i] for i in order]


def rrf(*rankings: list[str], k: int = 60) -> list[str]:
    """Reciprocal rank fusion of several rankings of the same keys."""
    scores: Counter[str] = Counter()
    for ranking in rankings:
        for position, key in enumerate(ranking):
            scores[key] += 1.0 / (k + position + 1)
    return [key for key, _ in scores.most_common()]


def evaluate() -> dict[str, object]:
    """Hit rates of the three methods on both query sets."""
    from app.services.knowledge.embeddings import LocalMiniLM

    model = LocalMiniLM(threads=2)
    keys = list(CORPUS)
    matrix = model.embed_sync([CORPUS[k] for k in keys])
    bm25 = BM25(CORPUS)
    report: dict[str, object] = {"passages": len(keys), "model": model.model_id}
    for name, queries in (("paraphrase_set", QUERIES), ("keyword_set", KEYWORD_QUERIES)):
        texts = [q for q, _ in queries]
        expected = [k for _, k in queries]
        vectors = model.embed_sync(texts)
        vector_rank = [[keys[i] for i in np.argsort(-(matrix @ v))] for v in vectors]
        bm25_rank = [bm25.rank(q) for q in texts]
        hybrid_rank = [rrf(v, b) for v, b in zip(vector_rank, bm25_rank, strict=True)]
        report[name] = {
            "queries": len(queries),
            "vector": hit_rates(vector_rank, expected),
            "bm25": hit_rates(bm25_rank, expected),
            "hybrid_rrf": hit_rates(hybrid_rank, expected),
            "vector_misses": [q for q, r, e in zip(texts, vector_rank, expected, strict=True) if r[0] != e],
        }
    return report


if __name__ == "__main__":
    print(json.dumps(evaluate(), indent=2))
