"""Preview.spec as the controller reads it: defaults, and a field-naming error for each
spec it cannot use (the schema catches most; these are what it cannot say)."""

import pytest

from pullsync import api


def test_a_minimal_preview_plans_github_pull_requests_every_minute_and_publishes_nowhere() -> None:
    spec = api.PreviewSpec.parse({"syncRef": {"name": "prod"}})
    assert spec == api.PreviewSpec("prod", ("refs/pull/*/head",), 60.0, None, suspend=False)


def test_a_github_provider_defaults_to_api_github_com_and_keeps_its_token_secret_name() -> None:
    spec = api.PreviewSpec.parse(
        {"syncRef": {"name": "prod"}, "provider": {"type": "github", "repository": "org/x", "secretRef": {"name": "t"}}}
    )
    assert spec.provider == api.ProviderSpec("github", "https://api.github.com", "org/x", "t")


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ({}, "spec.syncRef.name: required"),
        ({"syncRef": {"name": "p"}, "refs": ["pull/*"]}, "spec.refs: must be a list of ref globs"),
        ({"syncRef": {"name": "p"}, "interval": "0s"}, "spec.interval"),
        ({"syncRef": {"name": "p"}, "provider": {"type": "bitbucket"}}, "spec.provider.type: 'bitbucket' is not"),
        ({"syncRef": {"name": "p"}, "provider": {"type": "gitea", "repository": "o/r"}}, "spec.provider.address"),
        ({"syncRef": {"name": "p"}, "provider": {"type": "github"}}, "spec.provider.repository: required"),
    ],
    ids=["no sync", "a ref glob outside refs/", "a zero interval", "an unknown provider", "gitea without address",
         "github without repository"],
)  # fmt: skip
def test_an_unusable_preview_spec_names_the_field(spec: dict[str, object], error: str) -> None:
    with pytest.raises(ValueError, match="^" + error.replace("*", r"\*")):
        api.PreviewSpec.parse(spec)


def test_a_generic_provider_needs_only_an_address() -> None:
    provider = api.ProviderSpec.parse({"type": "generic", "address": "https://hooks.example.com/plan/"})
    assert provider == api.ProviderSpec("generic", "https://hooks.example.com/plan", "", None)
