"""API keys: secret shape, hash at rest, tag and key validation, and rejection without an oracle."""

import dataclasses
import hashlib
import re
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from common.errors import InvalidArgument, Unauthenticated
from gateway.domain import keys
from gateway.domain.keys import (
    MAX_TAGS,
    SECRET_PREFIX,
    ApiKey,
    RateLimits,
    hash_secret,
    new_key_id,
    new_secret,
    validate_new_key,
    validate_tags,
)
from gateway.service import state as service

# -- secrets and hashes --------------------------------------------------------------------------


def test_secret_is_tg_and_43_url_safe_characters():
    secrets = {new_secret() for _ in range(50)}
    assert len(secrets) == 50
    for s in secrets:
        assert re.fullmatch(r"tg_[A-Za-z0-9_-]{43}", s), s
    assert SECRET_PREFIX == "tg_"


def test_key_id_is_key_and_24_hex_digits():
    assert re.fullmatch(r"key_[0-9a-f]{24}", new_key_id())
    assert new_key_id() != new_key_id()


def test_hash_is_the_sha256_hex_of_the_secret():
    # FIPS 180-2 test vector for "abc"
    assert hash_secret("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    s = new_secret()
    assert hash_secret(s) == hashlib.sha256(s.encode()).hexdigest()
    assert hash_secret(s) != hash_secret(s + "x")


def test_revoked_means_a_revoke_time():
    k = ApiKey(id="key_1", builder_id="b", app_id="a", customer_id="c", display_name="")
    assert not k.revoked
    assert dataclasses.replace(k, revoke_time=datetime(2026, 1, 1, tzinfo=UTC)).revoked


# -- tags ----------------------------------------------------------------------------------------


def test_valid_tags_are_returned_as_a_copy():
    tags = {"workspace": "acme", "usage_type": "batch", "v1.2-x": "", "a" * 64: "v" * 256}
    out = validate_tags(tags, "default_tags")
    assert out == tags and out is not tags


@pytest.mark.parametrize(
    "key",
    ["Workspace", "has space", "", "a" * 65, "env\n", "ümlaut", "a/b", "a:b"],
)
def test_a_bad_tag_key_names_the_key_under_the_field(key):
    with pytest.raises(InvalidArgument) as err:
        validate_tags({key: "x"}, "default_tags")
    assert err.value.field == f"default_tags.{key[:64]}"  # the caller's text is quoted truncated


def test_a_huge_bad_tag_key_is_quoted_truncated():
    with pytest.raises(InvalidArgument) as err:
        validate_tags({"K" * 10_000: "x"}, "tags")
    assert len(err.value.message) < 200 and err.value.field == "tags." + "K" * 64


@pytest.mark.parametrize("value", ["a\x00b", "\ud800"])
def test_a_tag_value_metering_could_not_store_is_refused(value):
    with pytest.raises(InvalidArgument) as err:
        validate_tags({"workspace": value}, "default_tags")
    assert err.value.field == "default_tags.workspace"


def test_a_tag_value_over_256_characters_is_rejected():
    with pytest.raises(InvalidArgument) as err:
        validate_tags({"env": "v" * 257}, "tags")
    assert err.value.field == "tags.env"


def test_at_most_sixteen_tags():
    validate_tags({f"t{i}": "x" for i in range(MAX_TAGS)}, "tags")
    with pytest.raises(InvalidArgument) as err:
        validate_tags({f"t{i}": "x" for i in range(MAX_TAGS + 1)}, "tags")
    assert err.value.field == "tags"


# -- new keys ------------------------------------------------------------------------------------


def test_a_complete_new_key_is_valid():
    validate_new_key("b" * 128, "a", "c", "d" * 256, {"workspace": "acme"}, RateLimits(0, 0))


@pytest.mark.parametrize(
    "args,field",
    [
        (("", "a", "c", "", {}, RateLimits()), "builder_id"),
        (("b" * 129, "a", "c", "", {}, RateLimits()), "builder_id"),
        (("b", "", "c", "", {}, RateLimits()), "app_id"),
        (("b", "a", "", "", {}, RateLimits()), "customer_id"),
        (("b", "a", "c", "d" * 257, {}, RateLimits()), "display_name"),
        (("b", "a", "c", "", {"Bad": "x"}, RateLimits()), "default_tags.Bad"),
        (("b", "a", "c", "", {}, RateLimits(requests_per_minute=-1)), "rate_limits.requests_per_minute"),
        (("b", "a", "c", "", {}, RateLimits(tokens_per_minute=-1)), "rate_limits.tokens_per_minute"),
    ],
)
def test_an_invalid_new_key_names_the_field(args, field):
    with pytest.raises(InvalidArgument) as err:
        validate_new_key(*args)
    assert err.value.field == field


# -- KeyCache.authenticate: every rejection looks and costs the same -----------------------------

SECRET = "tg_" + "A" * 43
REVOKED_SECRET = "tg_" + "R" * 43
KEY = ApiKey(id="key_live", builder_id="b", app_id="a", customer_id="c", display_name="live")
REVOKED = ApiKey(
    id="key_gone",
    builder_id="b",
    app_id="a",
    customer_id="c",
    display_name="gone",
    revoke_time=datetime(2026, 1, 1, tzinfo=UTC),
)


@pytest.fixture
def cache() -> service.KeyCache:
    c = service.KeyCache()
    c.replace([(hash_secret(SECRET), KEY), (hash_secret(REVOKED_SECRET), REVOKED)])
    return c


@pytest.fixture
def work(monkeypatch):
    """Counts SHA-256 computations, hash_secret calls (as gateway.service imports it) and compare_digest
    calls (with their arguments), delegating to the real functions."""
    seen = SimpleNamespace(sha256=0, hash_secret=0, compares=[])
    real_sha256, real_hash_secret, real_compare = (
        hashlib.sha256,
        service.hash_secret,
        service.hmac.compare_digest,
    )

    def sha256(*args, **kwargs):
        seen.sha256 += 1
        return real_sha256(*args, **kwargs)

    def counting_hash_secret(secret):
        seen.hash_secret += 1
        return real_hash_secret(secret)

    def compare_digest(a, b):
        seen.compares.append((a, b))
        return real_compare(a, b)

    monkeypatch.setattr(keys, "hashlib", SimpleNamespace(sha256=sha256))
    monkeypatch.setattr(service, "hash_secret", counting_hash_secret)
    monkeypatch.setattr(service.hmac, "compare_digest", compare_digest)
    return seen


REJECTED = [
    pytest.param(None, id="missing"),
    pytest.param("", id="empty"),
    pytest.param("Bearer", id="bearer-without-secret"),
    pytest.param("Bearer    ", id="bearer-blank"),
    pytest.param("Basic dGc6eA==", id="wrong-scheme"),
    pytest.param(SECRET, id="secret-without-scheme"),
    pytest.param("Bearer not-a-key", id="malformed"),
    pytest.param("Bearer tg_" + "B" * 43, id="unknown"),
    pytest.param("Bearer " + SECRET + "x", id="unknown-one-char-longer"),
    pytest.param("Bearer " + REVOKED_SECRET, id="revoked"),
]


@pytest.mark.parametrize("authorization", REJECTED)
def test_every_rejection_is_the_same_unauthenticated_after_the_same_work(cache, work, authorization):
    with pytest.raises(Unauthenticated) as err:
        cache.authenticate(authorization)
    assert (
        err.value.message == service.UNAUTHENTICATED_MESSAGE == "the API key is missing, unknown or revoked"
    )
    assert str(err.value) == service.UNAUTHENTICATED_MESSAGE
    assert err.value.field is None
    assert work.sha256 == 1
    assert work.hash_secret == 1
    assert len(work.compares) == 1


def test_rejections_are_indistinguishable_from_one_another(cache):
    answers = set()
    for p in REJECTED:
        with pytest.raises(Unauthenticated) as err:
            cache.authenticate(p.values[0])
        answers.add((type(err.value), err.value.message, err.value.field, err.value.args))
    assert len(answers) == 1


def test_unknown_key_is_compared_against_the_dummy_hash(cache, work):
    with pytest.raises(Unauthenticated):
        cache.authenticate("Bearer tg_" + "B" * 43)
    assert work.compares == [(service._DUMMY_HASH, hash_secret("tg_" + "B" * 43))]


def test_revoked_key_is_compared_against_its_stored_hash_and_still_rejected(cache, work):
    with pytest.raises(Unauthenticated):
        cache.authenticate("Bearer " + REVOKED_SECRET)
    assert work.compares == [(hash_secret(REVOKED_SECRET), hash_secret(REVOKED_SECRET))]


@pytest.mark.parametrize(
    "authorization", ["Bearer " + SECRET, "bearer " + SECRET, "BEARER   " + SECRET + "  "]
)
def test_a_valid_key_returns_its_api_key_after_the_same_work(cache, work, authorization):
    assert cache.authenticate(authorization) is KEY
    assert work.sha256 == 1 and work.hash_secret == 1
    assert work.compares == [(hash_secret(SECRET), hash_secret(SECRET))]


def test_mark_revoked_takes_effect_at_once(cache):
    assert cache.authenticate("Bearer " + SECRET) is KEY
    cache.mark_revoked(dataclasses.replace(KEY, revoke_time=datetime(2026, 2, 1, tzinfo=UTC)))
    with pytest.raises(Unauthenticated):
        cache.authenticate("Bearer " + SECRET)


def test_put_adds_and_replace_drops(cache):
    other_secret = "tg_" + "O" * 43
    other = dataclasses.replace(KEY, id="key_other")
    cache.put(hash_secret(other_secret), other)
    assert cache.authenticate("Bearer " + other_secret) is other
    cache.replace([(hash_secret(other_secret), other)])
    with pytest.raises(Unauthenticated):
        cache.authenticate("Bearer " + SECRET)
