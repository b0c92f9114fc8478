"""Redis URLs shown without their password, in every spelling a URL can carry one."""

from __future__ import annotations

import pytest

from tailor.flows.config import ConfigError, load_config
from tailor.operators.redis.redact import redact_url, scrub, url_secrets


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://tailor:s3cret@h:6379/0", "redis://tailor:***@h:6379/0"),
        ("redis://:s3cret@h:6379/0", "redis://:***@h:6379/0"),
        ("redis://s3cret@h:6379/0", "redis://***@h:6379/0"),  # a password without its colon
        (
            "rediss://u:p%40ss@h:6380/1?ssl_cert_reqs=required",
            "rediss://u:***@h:6380/1?ssl_cert_reqs=required",
        ),
        ("redis://h:6379/0?db=1&password=s3cret", "redis://h:6379/0?db=1&password=***"),
        ("redis://u:pa@ss@h/0", "redis://u:***@h/0"),
        ("redis://u:pa/ss@h/0", "redis://***"),  # does not parse: only the scheme is shown
        ("redis://h:6379/0", "redis://h:6379/0"),
        ("unix:///tmp/redis.sock", "unix:///tmp/redis.sock"),
        ("", ""),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_scrub_hides_every_spelling_of_the_password() -> None:
    url = "redis://u:p%40ss@h/0"
    assert url_secrets(url) == {"p%40ss", "p@ss"}
    text = f"connecting to {url}: AUTH p@ss refused"
    assert scrub(text, url) == "connecting to redis://u:***@h/0: AUTH *** refused"


def test_config_repr_hides_the_password() -> None:
    config = load_config(env={"REDIS_URL": "redis://u:s3cret@h:6379/0"})
    assert config.redis_url == "redis://u:s3cret@h:6379/0"
    assert "s3cret" not in repr(config) and "redis://u:***@h:6379/0" in repr(config)


@pytest.mark.parametrize("password", ["s3c/ret", "s3c#ret", "s3c?ret"])
def test_an_unparsable_url_is_refused_without_quoting_it(password: str) -> None:
    """redis-py would read 's3c' as the port and quote it in its error."""
    with pytest.raises(ConfigError) as refused:
        load_config(env={"REDIS_URL": f"redis://u:{password}@h:6379/0"})
    assert "percent-encode" in str(refused.value)
    assert "s3c" not in str(refused.value) and "ret" not in str(refused.value)
