"""Helpers shared by pullsync's tests: the local control plane, git servers, the operator."""
