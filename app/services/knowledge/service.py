"""Knowledge (RAG): organization-scoped namespaces of documents, chunked, embedded and searched.

Scoping (enforced here, for every route and the page):

- **Reading** (search, get, list): the acting organization's namespaces, then the
  global ones. A platform admin acting in an organization sees that organization
  and global; acting globally, global only. Never another organization's.
- **Writing** (store, delete, namespaces, uploads): the acting organization; global
  knowledge only by a platform admin acting globally.

Documents are split by LlamaIndex's ``SentenceSplitter`` into passages of about
200 word pieces (MiniLM reads 256), embedded, and stored as chunk rows with their
vectors. Storing an existing key replaces the document and all its chunks in one
transaction. Chunking and embedding happen before the first database statement:
on SQLite every transaction holds the write lock, which must not wait for a model.
"""

from __future__ import annotations

import asyncio
import builtins
import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models.base import new_id, utcnow
from app.models.knowledge import KnowledgeChunk, KnowledgeDocument, KnowledgeNamespace
from app.services.actor import Actor
from app.services.errors import ConflictError, InvalidInputError, NotFoundError, PermissionDeniedError
from app.services.knowledge.checks import (
    MAX_QUERY_CHARS,
    check_content,
    check_key,
    check_limit,
    check_metadata,
    check_min_score,
    check_namespace,
    check_namespaces,
)
from app.services.knowledge.embeddings import embedder_from_settings
from app.services.knowledge.index import DocumentChange, NamespaceMatrix, VectorCache
from app.services.knowledge.views import ChunkView, KnowledgeDocumentView, NamespaceView, SearchHit

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    # numpy is imported where vectors are built, not here: it costs ~0.15 s of every process start.
    import numpy as np

    from app.settings import Settings


# ----- process-wide parts --------------------------------------------------------------------------
class KnowledgeRuntime:
    """What knowledge keeps for the life of a server process: the embedder, the vector cache, LlamaIndex.

    Args:
        settings: Platform settings (embedding provider, limits).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.embedder = embedder_from_settings(settings)
        self.cache = VectorCache(max_bytes=settings.knowledge_cache_mb * 1024 * 1024)
        self._llama: ModuleType | None = None
        self._splitter: Any = None
        self._embed_model: Any = None

    async def llama(self) -> ModuleType:
        """The LlamaIndex layer, imported once in a thread (it takes seconds; the loop keeps serving)."""
        if self._llama is None:
            module = await asyncio.to_thread(importlib.import_module, "app.services.knowledge.llama")
            self._embed_model = module.PlatformEmbedding(self.embedder)
            self._splitter = module.make_splitter(self.embedder)
            self._llama = module
        return self._llama

    async def embed_model(self) -> Any:
        """The LlamaIndex embedding model (``PlatformEmbedding``)."""
        await self.llama()
        return self._embed_model

    async def split(self, text: str) -> list[str]:
        """Sentence-aware chunks of ``text`` sized to the model's window (in a thread when long)."""
        await self.llama()
        if len(text) < 20_000:
            chunks = self._splitter.split_text(text)
        else:
            chunks = await asyncio.to_thread(self._splitter.split_text, text)
        return [c for c in chunks if c.strip()]

    async def embed_chunks(
        self, chunks: list[str], progress: Callable[[int], Awaitable[None]] | None = None, batch: int = 32
    ) -> np.ndarray:
        """Embed passages through LlamaIndex in batches, reporting how many are done after each."""
        model = await self.embed_model()  # imports the LlamaIndex layer, and numpy with it, in a thread
        import numpy as np

        parts: list[np.ndarray] = []
        for start in range(0, len(chunks), batch):
            rows = await model.aget_text_embedding_batch(chunks[start : start + batch])
            parts.append(np.asarray(rows, dtype=np.float32))
            if progress is not None:
                await progress(min(start + batch, len(chunks)))
        return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)

    async def embed_query(self, text: str) -> np.ndarray:
        """The unit vector of a query."""
        model = await self.embed_model()  # imports numpy in a thread (see embed_chunks)
        import numpy as np

        return np.asarray(await model.aget_query_embedding(text), dtype=np.float32)

    @property
    def model_id(self) -> str:
        """The embedding model id stored with new vectors."""
        return self.embedder.model_id

    def close(self) -> None:
        """Stop the embedder's threads."""
        self.embedder.close()


@dataclass
class PreparedDocument:
    """A document chunked and embedded, ready to be written (no database touched yet)."""

    content: str
    chunks: list[str]
    vectors: np.ndarray
    model_id: str


def document_public(doc: KnowledgeDocument, namespace: KnowledgeNamespace) -> KnowledgeDocumentView:
    """The SDK's ``KnowledgeDocument`` shape (plus page fields)."""
    return {
        "id": doc.id,
        "namespace": namespace.name,
        "content": doc.content,
        "key": doc.key,
        "metadata": doc.doc_metadata or {},
        "score": None,
        "organization_id": namespace.organization_id,
        "created_at": doc.created_at.isoformat(),
        "updated_at": doc.updated_at.isoformat(),
        "source": doc.source,
        "chunk_count": doc.chunk_count,
    }


# ----- the service -----------------------------------------------------------------------------------
class KnowledgeService:
    """Store, search, read and delete knowledge in the actor's scope.

    Args:
        session: The request's database session.
        runtime: The process-wide :class:`KnowledgeRuntime`.
    """

    def __init__(self, session: AsyncSession, runtime: KnowledgeRuntime) -> None:
        self.session = session
        self.runtime = runtime

    # -- scope ---------------------------------------------------------------------------------------
    @staticmethod
    def write_org(actor: Actor) -> str | None:
        """The organization the actor writes knowledge into (None = global, platform admins only)."""
        if actor.acting_org_id:
            return actor.acting_org_id
        if actor.is_superuser:
            return None
        raise PermissionDeniedError("Only platform admins may write global knowledge.")

    @staticmethod
    def read_orgs(actor: Actor) -> list[str | None]:
        """Organizations whose knowledge the actor reads, in precedence order (own first, then global)."""
        return [actor.acting_org_id, None] if actor.acting_org_id else [None]

    @staticmethod
    def _org_clause(org_id: str | None) -> Any:
        column = col(KnowledgeNamespace.organization_id)
        return column.is_(None) if org_id is None else column == org_id

    def _visible_clause(self, actor: Actor) -> Any:
        orgs = self.read_orgs(actor)
        clauses = [self._org_clause(o) for o in orgs]
        return clauses[0] if len(clauses) == 1 else clauses[0] | clauses[1]

    async def _namespace(self, org_id: str | None, name: str) -> KnowledgeNamespace | None:
        stmt = select(KnowledgeNamespace).where(self._org_clause(org_id), col(KnowledgeNamespace.name) == name)
        return (await self.session.execute(stmt)).scalars().first()

    async def _namespace_or_create(self, org_id: str | None, name: str) -> KnowledgeNamespace:
        existing = await self._namespace(org_id, name)
        if existing is not None:
            return existing
        namespace = KnowledgeNamespace(organization_id=org_id, name=name)
        try:
            async with self.session.begin_nested():  # a concurrent creator may win the unique index
                self.session.add(namespace)
                await self.session.flush()
        except IntegrityError:
            existing = await self._namespace(org_id, name)
            if existing is None:
                raise
            return existing
        return namespace

    async def _lock(self, namespace_id: str) -> None:
        # Writers of one namespace take turns (Postgres row lock; SQLite's write lock already
        # serialises transactions): a replace-by-key then always sees the previous writer's document.
        await self.session.execute(
            select(col(KnowledgeNamespace.id)).where(col(KnowledgeNamespace.id) == namespace_id).with_for_update()
        )

    async def _bump(self, namespace_id: str, change: DocumentChange, model_id: str) -> None:
        # Every change to a namespace's chunks moves its version: cached matrices compare it. This
        # process's own cached matrix takes the change in place once the transaction commits.
        version = (
            await self.session.execute(
                update(KnowledgeNamespace)
                .where(col(KnowledgeNamespace.id) == namespace_id)
                .values(version=KnowledgeNamespace.version + 1)  # type: ignore[operator]
                .returning(col(KnowledgeNamespace.version))
            )
        ).scalar_one()
        self.runtime.cache.apply_after_commit(self.session, namespace_id, version, model_id, change)

    # -- writing -------------------------------------------------------------------------------------
    async def prepare(self, content: str) -> PreparedDocument:
        """Chunk and embed ``content`` (no database access)."""
        chunks = await self.runtime.split(content)
        if not chunks:
            raise InvalidInputError.field("content", "has no text to index")
        vectors = await self.runtime.embed_chunks(chunks)
        return PreparedDocument(content=content, chunks=chunks, vectors=vectors, model_id=self.runtime.model_id)

    async def store(
        self,
        actor: Actor,
        content: Any,
        namespace: Any = "default",
        key: Any = None,
        metadata: Any = None,
    ) -> tuple[KnowledgeDocument, KnowledgeNamespace]:
        """Store a document, replacing the one with the same key in the namespace (all its chunks).

        Args:
            actor: Who stores; the document goes into their write scope.
            content: The text.
            namespace: Namespace name (created when missing).
            key: Optional key; an existing document with it is replaced atomically.
            metadata: JSON object kept with the document (searchable with filters).

        Returns:
            The document and its namespace.
        """
        return await self.store_in(self.write_org(actor), actor.user_id, content, namespace, key, metadata)

    async def store_in(
        self,
        org_id: str | None,
        user_id: str | None,
        content: Any,
        namespace: Any = "default",
        key: Any = None,
        metadata: Any = None,
        *,
        source: str | None = None,
        prepared: PreparedDocument | None = None,
    ) -> tuple[KnowledgeDocument, KnowledgeNamespace]:
        """Store into the namespace of ``org_id`` (None = global); the permission is the caller's check.

        Args:
            org_id: Organization owning the namespace.
            user_id: Recorded as the document's author.
            content: The text.
            namespace: Namespace name (created when missing).
            key: Optional key; an existing document with it is replaced atomically.
            metadata: JSON object kept with the document.
            source: File name it came from (uploads).
            prepared: Chunks and vectors computed beforehand (background jobs).
        """
        name = check_namespace(namespace)
        key = check_key(key)
        metadata = check_metadata(metadata)
        if prepared is None:
            content = check_content(content, self.runtime.settings.knowledge_max_content_chars)
            prepared = await self.prepare(content)
        llama = await self.runtime.llama()
        import numpy as np  # loaded by the LlamaIndex layer just imported; not needed at process start

        # -- database from here on --
        ns = await self._namespace_or_create(org_id, name)
        await self._lock(ns.id)
        doc = None
        if key is not None:
            stmt = select(KnowledgeDocument).where(
                col(KnowledgeDocument.namespace_id) == ns.id, col(KnowledgeDocument.key) == key
            )
            doc = (await self.session.execute(stmt)).scalars().first()
        store = llama.PlatformVectorStore(self.session, prepared.model_id, namespace_id=ns.id)
        if doc is None:
            doc = KnowledgeDocument(namespace_id=ns.id, key=key, content=prepared.content, created_by=user_id)
            self.session.add(doc)
        else:
            await store.adelete(doc.id)
            doc.content = prepared.content
            doc.created_by = user_id
            doc.updated_at = utcnow()
        doc.doc_metadata = metadata
        doc.source = source
        doc.chunk_count = len(prepared.chunks)
        await self.session.flush()
        nodes = [
            llama.TextNode(
                id_=new_id(),
                text=text,
                embedding=vector.tolist(),
                metadata={"chunk_index": i},
                relationships={llama.NodeRelationship.SOURCE: llama.RelatedNodeInfo(node_id=doc.id)},
            )
            for i, (text, vector) in enumerate(zip(prepared.chunks, prepared.vectors, strict=True))
        ]
        await store.async_add(nodes)
        change = DocumentChange(
            document_id=doc.id,
            key=key,
            metadata=metadata or {},
            chunk_ids=[node.node_id for node in nodes],
            vectors=np.asarray(prepared.vectors, dtype=np.float32),  # the rows async_add stored as <f4
        )
        await self._bump(ns.id, change, prepared.model_id)
        return doc, ns

    async def _writable_document(self, actor: Actor, doc_id: str) -> tuple[KnowledgeDocument, KnowledgeNamespace]:
        doc, ns = await self.get_by_id(actor, doc_id)
        if ns.organization_id != self.write_org(actor):
            raise PermissionDeniedError("Only platform admins acting globally may change global knowledge.")
        return doc, ns

    async def _delete_document(self, doc: KnowledgeDocument) -> None:
        await self.session.execute(delete(KnowledgeChunk).where(col(KnowledgeChunk.document_id) == doc.id))
        await self.session.execute(delete(KnowledgeDocument).where(col(KnowledgeDocument.id) == doc.id))
        await self._bump(doc.namespace_id, DocumentChange(document_id=doc.id), self.runtime.model_id)

    async def delete(self, actor: Actor, key: Any, namespace: Any = "default") -> bool:
        """Delete the document with ``key`` in the actor's write scope; False when there is none."""
        org_id = self.write_org(actor)
        key = check_key(key, required=True)
        ns = await self._namespace(org_id, check_namespace(namespace))
        if ns is None:
            return False
        await self._lock(ns.id)
        stmt = select(KnowledgeDocument).where(
            col(KnowledgeDocument.namespace_id) == ns.id, col(KnowledgeDocument.key) == key
        )
        doc = (await self.session.execute(stmt)).scalars().first()
        if doc is None:
            return False
        await self._delete_document(doc)
        return True

    async def delete_by_id(self, actor: Actor, doc_id: str) -> None:
        """Delete a document by id (404 when not visible, 403 when visible but read-only)."""
        doc, _ = await self._writable_document(actor, doc_id)
        await self._lock(doc.namespace_id)
        await self._delete_document(doc)

    async def create_namespace(self, actor: Actor, name: Any, description: Any = None) -> KnowledgeNamespace:
        """Create an empty namespace in the write scope (409 when it exists)."""
        org_id = self.write_org(actor)
        name = check_namespace(name, "name")
        if description is not None and (
            not isinstance(description, str) or len(description) > 2000 or "\x00" in description
        ):
            raise InvalidInputError.field("description", "must be text of at most 2000 characters")
        if await self._namespace(org_id, name) is not None:
            raise ConflictError(f"A knowledge namespace named {name!r} already exists here.")
        ns = KnowledgeNamespace(organization_id=org_id, name=name, description=(description or "").strip() or None)
        self.session.add(ns)
        await self.session.flush()
        return ns

    async def delete_namespace(self, actor: Actor, name: Any) -> int:
        """Delete a namespace of the write scope with all its documents; returns how many documents went."""
        org_id = self.write_org(actor)
        ns = await self._namespace(org_id, check_namespace(name))
        if ns is None:
            return 0
        count = (
            await self.session.execute(
                select(func.count()).select_from(KnowledgeDocument).where(col(KnowledgeDocument.namespace_id) == ns.id)
            )
        ).scalar_one()
        await self.session.execute(delete(KnowledgeChunk).where(col(KnowledgeChunk.namespace_id) == ns.id))
        await self.session.execute(delete(KnowledgeDocument).where(col(KnowledgeDocument.namespace_id) == ns.id))
        await self.session.execute(delete(KnowledgeNamespace).where(col(KnowledgeNamespace.id) == ns.id))
        self.runtime.cache.invalidate(ns.id)
        return int(count)

    # -- reading -------------------------------------------------------------------------------------
    async def search(
        self,
        actor: Actor,
        query: Any,
        namespaces: Any = "default",
        limit: Any = 5,
        min_score: Any = None,
        metadata_filter: Any = None,
    ) -> builtins.list[SearchHit]:
        """The documents most similar to ``query``, each with its best passage as ``content``.

        Searches every named namespace of the actor's organization and the global
        ones of the same names; results are merged by score (on a tie the
        organization's document comes first), at most one per document.
        """
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError.field("query", "must be non-empty text")
        if len(query) > MAX_QUERY_CHARS:
            raise InvalidInputError.field("query", f"must be at most {MAX_QUERY_CHARS} characters")
        names = check_namespaces(namespaces)
        limit = check_limit(limit)
        min_score = check_min_score(min_score)
        if metadata_filter is not None and not isinstance(metadata_filter, dict):
            raise InvalidInputError.field("metadata_filter", "must be a JSON object")
        llama = await self.runtime.llama()
        try:
            filters = llama.filters_from_dict(metadata_filter)
        except (ValueError, TypeError) as exc:
            raise InvalidInputError.field("metadata_filter", str(exc)) from None
        # The query is embedded before the first statement (see the module docstring).
        vector = await self.runtime.embed_query(query)
        # -- database from here on --
        stmt = select(KnowledgeNamespace).where(col(KnowledgeNamespace.name).in_(names), self._visible_clause(actor))
        found = list((await self.session.execute(stmt)).scalars())
        # Organization first, then global; within each, in the order the caller named them.
        found.sort(key=lambda n: (n.organization_id is None, names.index(n.name)))
        model_id = self.runtime.model_id
        matrices: list[NamespaceMatrix] = [
            await self.runtime.cache.get(self.session, ns.id, ns.version, model_id) for ns in found
        ]
        by_id = {ns.id: ns for ns in found}
        store = llama.PlatformVectorStore(self.session, model_id, matrices=matrices)
        index = llama.VectorStoreIndex.from_vector_store(store, embed_model=await self.runtime.embed_model())
        retriever = index.as_retriever(
            similarity_top_k=limit, filters=filters, vector_store_kwargs={"min_score": min_score}
        )
        nodes = await retriever.aretrieve(llama.QueryBundle(query_str=query, embedding=vector.tolist()))
        results: builtins.list[SearchHit] = []
        for item in nodes:
            hit = store.hits[item.node.node_id]
            ns = by_id[hit.matrix.namespace_id]
            results.append(
                {
                    "id": hit.matrix.doc_ids[hit.doc],
                    "namespace": ns.name,
                    "content": item.node.get_content(),
                    "key": hit.matrix.doc_keys[hit.doc],
                    "metadata": item.node.metadata,
                    "score": round(float(item.score or 0.0), 6),
                    "organization_id": ns.organization_id,
                    "chunk_id": item.node.node_id,
                }
            )
        return results

    async def get(self, actor: Actor, key: Any, namespace: Any = "default") -> KnowledgeDocumentView:
        """The document with ``key``: the organization's, else the global one (404 when neither)."""
        key = check_key(key, required=True)
        name = check_namespace(namespace)
        for org_id in self.read_orgs(actor):
            ns = await self._namespace(org_id, name)
            if ns is None:
                continue
            stmt = select(KnowledgeDocument).where(
                col(KnowledgeDocument.namespace_id) == ns.id, col(KnowledgeDocument.key) == key
            )
            doc = (await self.session.execute(stmt)).scalars().first()
            if doc is not None:
                return document_public(doc, ns)
        raise NotFoundError(f"No knowledge document with key {key!r} in namespace {name!r}.")

    async def get_by_id(self, actor: Actor, doc_id: str) -> tuple[KnowledgeDocument, KnowledgeNamespace]:
        """A visible document by id (404 otherwise, whether it exists elsewhere or not)."""
        doc = await self.session.get(KnowledgeDocument, doc_id)
        ns = await self.session.get(KnowledgeNamespace, doc.namespace_id) if doc is not None else None
        if doc is None or ns is None or ns.organization_id not in self.read_orgs(actor):
            raise NotFoundError(f"Knowledge document {doc_id!r} not found.")
        return doc, ns

    async def chunks(self, actor: Actor, doc_id: str) -> builtins.list[ChunkView]:
        """The passages of a visible document, in order, with the model that embedded each."""
        doc, _ = await self.get_by_id(actor, doc_id)
        stmt = (
            select(
                col(KnowledgeChunk.id),
                col(KnowledgeChunk.position),
                col(KnowledgeChunk.content),
                col(KnowledgeChunk.embedding_model),
            )
            .where(col(KnowledgeChunk.document_id) == doc.id)
            .order_by(col(KnowledgeChunk.position))
        )
        return [
            {"id": r[0], "position": r[1], "content": r[2], "embedding_model": r[3]}
            for r in await self.session.execute(stmt)
        ]

    async def list_namespaces(self, actor: Actor) -> builtins.list[NamespaceView]:
        """Visible namespaces (organization's first, then global) with document counts."""
        counts = (
            select(col(KnowledgeDocument.namespace_id), func.count().label("n"))
            .group_by(col(KnowledgeDocument.namespace_id))
            .subquery()
        )
        stmt = (
            select(KnowledgeNamespace, func.coalesce(counts.c.n, 0))
            .outerjoin(counts, counts.c.namespace_id == col(KnowledgeNamespace.id))
            .where(self._visible_clause(actor))
        )
        rows = list(await self.session.execute(stmt))
        rows.sort(key=lambda r: (r[0].organization_id is None, r[0].name.lower()))
        return [
            {
                "id": ns.id,
                "name": ns.name,
                "document_count": int(n),
                "organization_id": ns.organization_id,
                "description": ns.description,
            }
            for ns, n in rows
        ]

    async def namespace_by_id(self, actor: Actor, namespace_id: str) -> KnowledgeNamespace:
        """A visible namespace by id (404 otherwise)."""
        ns = await self.session.get(KnowledgeNamespace, namespace_id)
        if ns is None or ns.organization_id not in self.read_orgs(actor):
            raise NotFoundError(f"Knowledge namespace {namespace_id!r} not found.")
        return ns

    async def list_documents(
        self, actor: Actor, namespace_id: str, limit: int = 100, offset: int = 0
    ) -> builtins.list[dict[str, Any]]:
        """Documents of a visible namespace, newest first (content shortened to 300 characters)."""
        ns = await self.namespace_by_id(actor, namespace_id)
        stmt = (
            select(KnowledgeDocument)
            .where(col(KnowledgeDocument.namespace_id) == ns.id)
            .order_by(col(KnowledgeDocument.created_at).desc(), col(KnowledgeDocument.id))
            .limit(max(1, min(limit, 500)))
            .offset(max(0, offset))
        )
        docs = (await self.session.execute(stmt)).scalars()
        return [{**document_public(d, ns), "content": d.content[:300], "length": len(d.content)} for d in docs]
