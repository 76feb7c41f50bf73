"""Retrieval of relevant catalog entries from LanceDB: relevance, determinism, caching, S3."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import boto3
import pytest

from agents.catalog import Catalog
from agents.retrieval import CatalogIndex, HashingEmbedder, RetrievalConfig
from tests.agents.conftest import S3_CREDENTIALS

Embedding = Literal["none", "hashing"]
PRICING = "add a pricing section with a monthly/yearly toggle"
EXPECTATIONS = [
    (PRICING, {"pricing_table", "pricing_toggle"}),
    ("contact form that emails the owner", {"form", "input", "textarea"}),
    ("photo gallery", {"gallery", "image"}),
    ("FAQ", {"accordion"}),
]


@pytest.fixture(scope="module", params=["none", "hashing"])
def index(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> CatalogIndex:
    embedding: Embedding = request.param
    uri = str(tmp_path_factory.mktemp(f"catalog-{embedding}"))
    return CatalogIndex.open(RetrievalConfig(uri=uri, embedding=embedding))


def _types(index: CatalogIndex, query: str, k: int | None = None) -> list[str]:
    return [entry.type for entry in index.search(query, k)]


@pytest.mark.parametrize(("query", "expected"), EXPECTATIONS)
def test_search_returns_the_relevant_components_in_the_top_k(
    index: CatalogIndex, query: str, expected: set[str]
) -> None:
    found = _types(index, query)
    assert len(found) <= 6
    assert expected <= set(found), found


def test_pricing_query_has_the_same_top_hit_with_and_without_embeddings(tmp_path: Path) -> None:
    fts = CatalogIndex.open(RetrievalConfig(uri=str(tmp_path / "fts")))
    hybrid = CatalogIndex.open(RetrievalConfig(uri=str(tmp_path / "hybrid"), embedding="hashing"))
    assert _types(fts, PRICING)[0] == _types(hybrid, PRICING)[0] == "pricing_table"


def test_search_never_returns_more_than_k(index: CatalogIndex) -> None:
    for k in (1, 2, 32):
        assert len(index.search(PRICING, k)) <= k
    assert len(index.search(PRICING, 1)) == 1


def test_k_out_of_range_is_a_value_error(index: CatalogIndex) -> None:
    for k in (0, 33):
        with pytest.raises(ValueError, match="k must be between 1 and 32"):
            index.search(PRICING, k)


@pytest.mark.parametrize("embedding", ["none", "hashing"])
def test_order_is_deterministic_across_builds(embedding: Embedding, tmp_path: Path) -> None:
    first = CatalogIndex.open(RetrievalConfig(uri=str(tmp_path / "a"), embedding=embedding))
    second = CatalogIndex.open(RetrievalConfig(uri=str(tmp_path / "b"), embedding=embedding))
    for query, _ in EXPECTATIONS:
        assert _types(first, query, 32) == _types(first, query, 32) == _types(second, query, 32)


def test_blank_or_stop_word_queries_return_nothing(index: CatalogIndex) -> None:
    assert index.search("   ") == []
    assert index.search("the and of") == []


def test_typos_fall_back_to_fuzzy_matching(index: CatalogIndex) -> None:
    assert "gallery" in _types(index, "galery")
    assert "accordion" in _types(index, "acordion")


def test_query_without_word_matches_ranks_by_vector_only_when_hybrid(tmp_path: Path) -> None:
    fts = CatalogIndex.open(RetrievalConfig(uri=str(tmp_path / "fts")))
    hybrid = CatalogIndex.open(RetrievalConfig(uri=str(tmp_path / "hybrid"), embedding="hashing"))
    assert fts.search("xylophone quokka") == []
    assert len(hybrid.search("xylophone quokka")) == 6


def test_reopening_reuses_the_table_but_a_changed_catalog_rebuilds_it(
    tmp_path: Path, catalog: Catalog
) -> None:
    config = RetrievalConfig(uri=str(tmp_path))
    built = CatalogIndex.open(config)
    assert CatalogIndex.open(config).version == built.version
    assert "accordion" not in _types(built, "zeppelin")

    changed = Catalog(
        entry.model_copy(update={"keywords": (*entry.keywords, "zeppelin")})
        if entry.type == "accordion"
        else entry
        for entry in catalog.entries
    )
    rebuilt = CatalogIndex.open(config, changed)
    assert rebuilt.version > built.version
    assert _types(rebuilt, "zeppelin") == ["accordion"]
    assert CatalogIndex.open(config, changed).version == rebuilt.version
    assert CatalogIndex.open(config).version > rebuilt.version


def test_switching_the_embedding_rebuilds_the_table(tmp_path: Path) -> None:
    plain = CatalogIndex.open(RetrievalConfig(uri=str(tmp_path)))
    hybrid = CatalogIndex.open(RetrievalConfig(uri=str(tmp_path), embedding="hashing"))
    assert hybrid.version > plain.version
    assert _types(hybrid, "FAQ")[0] == "accordion"


def test_hashing_embedder_is_deterministic_and_normalised() -> None:
    embedder = HashingEmbedder(dims=64)
    first, second, empty = embedder.embed(["Photo gallery", "photo  GALLERY!", "the"])
    assert first == second
    assert len(first) == 64
    assert abs(sum(x * x for x in first) - 1.0) < 1e-9
    assert not any(empty)
    with pytest.raises(ValueError, match="at least 8 dimensions"):
        HashingEmbedder(dims=4)


def test_config_defaults_and_validation() -> None:
    config = RetrievalConfig()
    assert config.uri.endswith(os.path.join("nocode-ai", "catalog.lance"))
    assert not config.uri.startswith("~")
    assert (config.table, config.k, config.embedding) == ("components", 6, "none")
    assert RetrievalConfig(uri="~/x.lance").uri == os.path.expanduser("~/x.lance")
    assert RetrievalConfig(uri="s3://bucket/prefix").uri == "s3://bucket/prefix"
    for bad in ({"k": 0}, {"k": 33}, {"embedding": "bert"}, {"tabel": "x"}, {"table": "a/b"}):
        with pytest.raises(ValueError, match="validation error"):
            RetrievalConfig.model_validate(bad)


@pytest.mark.slow
def test_minilm_hybrid_search(tmp_path: Path) -> None:
    index = CatalogIndex.open(RetrievalConfig(uri=str(tmp_path), embedding="minilm"))
    for query, expected in EXPECTATIONS:
        assert expected <= set(_types(index, query)), query


@pytest.mark.slow
def test_s3_round_trip(s3_endpoint: str) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name=S3_CREDENTIALS["aws_region"],
        aws_access_key_id=S3_CREDENTIALS["aws_access_key_id"],
        aws_secret_access_key=S3_CREDENTIALS["aws_secret_access_key"],
    )
    s3.create_bucket(Bucket="catalog-bucket")
    config = RetrievalConfig(
        uri="s3://catalog-bucket/catalog",
        storage_options={"aws_endpoint": s3_endpoint, "allow_http": "true", **S3_CREDENTIALS},
    )
    built = CatalogIndex.open(config)
    assert {"pricing_table", "pricing_toggle"} <= set(_types(built, PRICING))
    reopened = CatalogIndex.open(config)
    assert reopened.version == built.version
    assert _types(reopened, "FAQ")[0] == "accordion"
