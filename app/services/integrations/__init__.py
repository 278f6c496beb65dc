"""Integrations: OAuth clients and tokens (with automatic refresh), integration config per organization, key rotation.

May use: config (secrets), identity and the shared pieces. Never chat, knowledge or forms."""
