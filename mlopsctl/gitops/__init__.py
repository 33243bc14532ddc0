"""Git-side features: history, diff, versions, verify, CI glue."""
