"""Tables: document tables per organization and their JSON query language (`bifrost.tables`).

May use: identity and the shared pieces only."""
