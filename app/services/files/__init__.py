"""Files: `bifrost.files` in cloud mode, organization-scoped, over an object store protocol (local directory by default).

May use: identity and the shared pieces only."""
