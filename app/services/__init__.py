"""Services: one per aggregate. They own queries, transactions, org scoping and permission checks."""
