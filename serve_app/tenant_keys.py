"""Tenant API keys: kept as SHA-256 digests, looked up in constant time, named by their id.

Keys come from ``NOCODE_API_KEYS`` (``tenant:key,tenant:key``) and from the file named by
``NOCODE_API_KEYS_FILE`` (a mounted Kubernetes Secret: one ``tenant:key`` per line, ``#``
comments). Either may give a key already digested, ``tenant:sha256:<64 hex>``, so that the
Secret need not hold the key itself. A tenant may have two keys at once (rotation: issue
the new one, move clients, drop the old); a key listed twice, even for the same tenant, is
refused at start-up rather than silently given to one of them.

A presented key is hashed and compared with every known digest (``hmac.compare_digest``,
no early exit), so the time a lookup takes does not tell how much of a guess was right.
Logs and errors name a key by its id (``key-`` and 12 hex digits of its digest).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

MAX_KEYS_PER_TENANT = 2
TENANT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")


class TenantKeyError(ValueError):
    """The configured keys are malformed, duplicated, or too many for one tenant."""


def key_id(digest: bytes) -> str:
    """How logs and errors name a key."""
    return "key-" + digest.hex()[:12]


@dataclass(frozen=True)
class TenantKey:
    """One tenant's key, as its digest; ``key_id`` is what may be shown."""

    tenant: str
    digest: bytes
    key_id: str


class TenantKeyring:
    """Every tenant's keys, by digest only."""

    def __init__(self, keys: Iterable[TenantKey] = ()) -> None:
        self._keys = tuple(keys)
        duplicated = [k for k, n in Counter(k.digest for k in self._keys).items() if n > 1]
        if duplicated:
            named = ", ".join(sorted(key_id(d) for d in duplicated))
            raise TenantKeyError(f"a key is listed more than once: {named}")
        per_tenant = Counter(k.tenant for k in self._keys)
        crowded = sorted(t for t, n in per_tenant.items() if n > MAX_KEYS_PER_TENANT)
        if crowded:
            raise TenantKeyError(
                f"at most {MAX_KEYS_PER_TENANT} keys per tenant (to rotate one): "
                + ", ".join(crowded)
            )

    def __bool__(self) -> bool:
        return bool(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"TenantKeyring({len(self._keys)} keys, {len(self.tenants())} tenants)"

    def tenants(self) -> set[str]:
        return {k.tenant for k in self._keys}

    def lookup(self, presented: str) -> TenantKey | None:
        """The key ``presented`` is, if any; every digest is compared, found or not."""
        digest = hashlib.sha256(presented.encode()).digest()
        found: TenantKey | None = None
        for key in self._keys:
            if hmac.compare_digest(digest, key.digest):
                found = key
        return found


def parse_entries(text: str, *, source: str, separator: str) -> list[TenantKey]:
    """``tenant:key`` (or ``tenant:sha256:<hex>``) entries split by ``separator``."""
    keys = []
    for number, raw in enumerate(text.split(separator), start=1):
        entry = raw.split("#", 1)[0].strip() if separator == "\n" else raw.strip()
        if not entry:
            continue
        tenant, sep, secret = entry.partition(":")
        if not sep or not TENANT_ID.match(tenant) or not secret:
            raise TenantKeyError(
                f"{source}: entry {number} must look like 'tenant:key' (tenant ids are "
                "letters, digits, '.', '_' or '-')"
            )
        pre = DIGEST.match(secret)
        digest = bytes.fromhex(pre.group(1)) if pre else hashlib.sha256(secret.encode()).digest()
        keys.append(TenantKey(tenant, digest, key_id(digest)))
    return keys
