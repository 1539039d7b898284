"""The operator's HTTP edge: the webhook receiver and the health and metrics endpoints."""
