"""Previews: the plan of a pull request's revision against the live cluster, published to the PR."""
