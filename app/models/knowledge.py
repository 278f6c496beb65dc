"""Knowledge (RAG): namespaces of documents, their chunks with embedding vectors, and ingestion jobs.

Vectors live beside their chunks as float32 bytes (``knowledge_chunk.embedding``),
each tagged with the embedding model that made it, so a model change can be
detected and re-embedded. Searching happens in memory (see
``app.services.knowledge.index``); ``knowledge_namespace.version`` is bumped by
every change to a namespace's chunks and tells cached matrices they are stale.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from app.models.base import JSONType, UTCDateTime, new_id, utcnow


class KnowledgeNamespace(SQLModel, table=True):
    """A named collection of documents of one organization, or global (``organization_id`` NULL)."""

    __tablename__ = "knowledge_namespace"
    __table_args__ = (
        UniqueConstraint("organization_id", "name", name="uq_knowledge_namespace_org_name"),
        # NULLs are distinct in a unique constraint, so global namespaces need their own partial index.
        Index(
            "uq_knowledge_namespace_global_name",
            "name",
            unique=True,
            sqlite_where=text("organization_id IS NULL"),
            postgresql_where=text("organization_id IS NULL"),
        ),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    organization_id: str | None = Field(default=None, foreign_key="organization.id", max_length=36)
    name: str = Field(max_length=100)
    description: str | None = Field(default=None, max_length=2000)
    version: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


class KnowledgeDocument(SQLModel, table=True):
    """One stored document; ``key`` (optional) is unique within its namespace."""

    __tablename__ = "knowledge_document"
    __table_args__ = (
        # NULL keys are distinct on both databases: any number of key-less documents.
        UniqueConstraint("namespace_id", "key", name="uq_knowledge_document_namespace_key"),
        Index("ix_knowledge_document_namespace_created", "namespace_id", "created_at"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    namespace_id: str = Field(
        sa_column=Column(String(36), ForeignKey("knowledge_namespace.id", ondelete="CASCADE"), nullable=False)
    )
    key: str | None = Field(default=None, sa_column=Column(String(255), nullable=True))
    content: str = Field(sa_column=Column(Text, nullable=False))
    doc_metadata: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    source: str | None = Field(default=None, max_length=255)
    chunk_count: int = 0
    created_by: str | None = Field(default=None, max_length=36)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


class KnowledgeChunk(SQLModel, table=True):
    """A passage of a document and its embedding (L2-normalised float32, little-endian bytes)."""

    __tablename__ = "knowledge_chunk"
    __table_args__ = (
        Index("ix_knowledge_chunk_namespace", "namespace_id"),
        Index("ix_knowledge_chunk_document", "document_id", "position"),
        Index("ix_knowledge_chunk_model", "embedding_model"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    document_id: str = Field(
        sa_column=Column(String(36), ForeignKey("knowledge_document.id", ondelete="CASCADE"), nullable=False)
    )
    # Denormalised from the document: a namespace's matrix loads with one indexed scan.
    namespace_id: str = Field(
        sa_column=Column(String(36), ForeignKey("knowledge_namespace.id", ondelete="CASCADE"), nullable=False)
    )
    position: int = 0
    content: str = Field(sa_column=Column(Text, nullable=False))
    embedding: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    embedding_model: str = Field(max_length=200)


class KnowledgeJob(SQLModel, table=True):
    """An ingestion job: an uploaded file (or pasted text) parsed, chunked and embedded in the background.

    ``data`` holds the uploaded bytes until the job ends, so a job interrupted by a
    restart runs again from the start.
    """

    __tablename__ = "knowledge_job"
    __table_args__ = (Index("ix_knowledge_job_org_created", "organization_id", "created_at"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    organization_id: str | None = Field(default=None, foreign_key="organization.id", max_length=36)
    namespace: str = Field(max_length=100)
    key: str | None = Field(default=None, max_length=255)
    filename: str = Field(max_length=255)
    status: str = Field(default="pending", max_length=20)
    stage: str = Field(default="queued", max_length=40)
    chunks_done: int = 0
    chunks_total: int = 0
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    document_id: str | None = Field(default=None, max_length=36)
    data: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    created_by: str | None = Field(default=None, max_length=36)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
