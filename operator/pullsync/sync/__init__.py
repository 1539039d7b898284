"""The Sync controller and its engine: render -> plan (pair desired with live, dry-run,
validate) -> apply (staged) -> prune, with the inventory in status."""
