"""Forms: form definitions, their field schema, access by role, and the data providers that fill their selects.

May use: executions (a form submits a run), identity and the shared pieces."""
