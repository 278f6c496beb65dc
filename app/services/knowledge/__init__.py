"""Knowledge (RAG): documents, chunking and parsing, embeddings, the in-memory vector index and LlamaIndex glue.

May use: identity and the shared pieces. Chat and the AI service use it; it uses neither."""
