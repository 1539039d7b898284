"""From a tree at a commit to Kubernetes objects: the YAML reader, file selection
(.sourceignore, spec.ignore) and limits. Pure: it never reaches the API client."""
