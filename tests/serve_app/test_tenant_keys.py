"""Tenant keys: digests only, constant-time lookup, rotation, duplicates refused, files."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

from serve_app.config import read_env
from serve_app.tenant_keys import TenantKeyError, TenantKeyring, parse_entries


def ring(text: str) -> TenantKeyring:
    return TenantKeyring(parse_entries(text, source="test", separator=","))


def tenant_of(keys: TenantKeyring, presented: str) -> str | None:
    found = keys.lookup(presented)
    return None if found is None else found.tenant


def test_a_key_finds_its_tenant_and_nothing_else_does() -> None:
    keys = ring("acme:key-acme-1,globex:key-globex-1")
    found = keys.lookup("key-acme-1")
    assert found is not None
    assert found.tenant == "acme"
    assert found.key_id == "key-" + hashlib.sha256(b"key-acme-1").hexdigest()[:12]
    assert keys.lookup("key-acme-") is None
    assert keys.lookup("KEY-ACME-1") is None
    assert keys.lookup("") is None


def test_only_digests_are_kept_and_a_digest_may_be_configured_instead_of_the_key() -> None:
    digest = hashlib.sha256(b"s3cret-value").hexdigest()
    keys = ring(f"acme:sha256:{digest}")
    assert tenant_of(keys, "s3cret-value") == "acme"
    found = keys.lookup("s3cret-value")
    assert "s3cret-value" not in repr(keys) + repr(found)
    plain = ring("acme:s3cret-value")
    assert "s3cret-value" not in repr(plain) + repr(plain.lookup("s3cret-value"))


def test_every_digest_is_compared_whether_the_key_is_first_last_or_unknown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = ring(",".join(f"t{i}:key-{i}" for i in range(6)))
    compared: list[int] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append(1)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    for presented in ("key-0", "key-5", "not-a-key"):
        compared.clear()
        keys.lookup(presented)
        assert len(compared) == 6, f"an early exit on {presented!r} would leak by timing"


def test_a_key_listed_twice_is_refused_without_showing_it() -> None:
    with pytest.raises(TenantKeyError) as err:
        ring("acme:shared-key-1,globex:shared-key-1")
    assert "shared-key-1" not in str(err.value)
    assert "key-" + hashlib.sha256(b"shared-key-1").hexdigest()[:12] in str(err.value)
    with pytest.raises(TenantKeyError):
        ring("acme:same,acme:same")


def test_a_tenant_rotates_with_two_keys_but_not_three() -> None:
    keys = ring("acme:old-key,acme:new-key")
    assert tenant_of(keys, "old-key") == tenant_of(keys, "new-key") == "acme"
    with pytest.raises(TenantKeyError, match="at most 2"):
        ring("acme:k1,acme:k2,acme:k3")


def test_a_malformed_entry_is_refused_without_showing_it() -> None:
    for bad in ("no-colon-secret-xyz", ":secret-xyz", "bad tenant:secret-xyz", "acme:"):
        with pytest.raises(TenantKeyError) as err:
            ring(bad)
        assert "secret-xyz" not in str(err.value)


def test_keys_come_from_a_mounted_file_as_well_as_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "keys"
    digest = hashlib.sha256(b"from-file-2").hexdigest()
    secret.write_text(f"# rotated 2026-12-01\nglobex:from-file-1\n\nglobex:sha256:{digest}\n")
    monkeypatch.setenv("NOCODE_API_KEYS", "acme:from-env")
    monkeypatch.setenv("NOCODE_API_KEYS_FILE", str(secret))
    env = read_env()
    assert tenant_of(env.tenant_keys, "from-env") == "acme"
    assert tenant_of(env.tenant_keys, "from-file-1") == "globex"
    assert tenant_of(env.tenant_keys, "from-file-2") == "globex"
    assert "from-" not in repr(env)
    secret.write_text("globex:from-env\n")  # the same key for two tenants, across sources
    monkeypatch.setenv("NOCODE_API_KEYS", "acme:from-env")
    with pytest.raises(TenantKeyError):
        read_env()
