"""Config: configuration values and secrets per organization with global fallback (`bifrost.config`).

May use: identity, the encryption keys (`app.services.secrets`) and the shared pieces."""
