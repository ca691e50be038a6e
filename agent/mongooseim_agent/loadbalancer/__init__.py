"""Load balancing: the readiness verdict, the HAProxy agent-check listener, connection counts."""
