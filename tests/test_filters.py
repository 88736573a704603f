"""The one operator set of metaembed_rag.filters, with expectations written out by hand (not by the code)."""

from __future__ import annotations

import os

import pytest

from metaembed_rag.errors import InvalidInputError, MetaEmbedError
from metaembed_rag.filters import FilterError, matches_filter, path_matches, validate_filter

PAGE = {"source": "/data/reports/a.pdf", "page": 3, "kind": "pdf", "score": 0.5, "tags": ["x"], "flag": True}


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({"page": 3}, True),
        ({"page": 3.0}, True),
        ({"flag": 1}, False),  # True is not 1
        ({"page": {"$eq": 4}}, False),
        ({"page": {"$ne": 4}}, True),
        ({"missing": {"$ne": 4}}, True),
        ({"missing": {"$nin": [4]}}, True),
        ({"missing": None}, True),
        ({"missing": {"$gt": 0}}, False),
        ({"page": {"$in": [1, 3]}}, True),
        ({"page": {"$nin": [1, 3]}}, False),
        ({"page": {"$gt": 3}}, False),
        ({"page": {"$gte": 3, "$lte": 3}}, True),
        ({"page": {"$lt": 4}, "kind": "pdf"}, True),
        ({"page": {"$gt": "2"}}, False),  # number vs string: fails, never raises
        ({"kind": {"$gte": "p"}}, True),
        ({"tags": ["x"]}, True),
        ({"tags": "x"}, False),
        ({"$and": [{"page": 3}, {"kind": "pdf"}]}, True),
        ({"$and": [{"page": 3}, {"kind": "image"}]}, False),
        ({"$or": [{"page": 1}, {"kind": "pdf"}]}, True),
        ({"$or": [{"page": 1}, {"kind": "image"}]}, False),
        ({"$not": {"page": 3}}, False),
        ({"$not": {"$or": [{"page": 1}, {"page": 2}]}}, True),
        ({"$or": [{"$and": [{"page": {"$gt": 2}}, {"score": {"$lt": 1}}]}, {"page": 0}]}, True),
    ],
)
def test_operators(flt, expected):
    assert validate_filter(flt) is flt
    assert matches_filter(PAGE, flt) is expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/data/reports/a.pdf", True),
        ("a.pdf", True),
        ("reports/a.pdf", True),
        ("./reports/a.pdf", True),
        ("ports/a.pdf", False),
        ("b.pdf", False),
        ("/other/reports/a.pdf", False),
        ("", False),
    ],
)
def test_source_matches_the_path_as_given(given, expected):
    assert matches_filter(PAGE, {"source": given}) is expected
    assert matches_filter(PAGE, {"source": {"$in": [given, "zzz.pdf"]}}) is expected
    assert matches_filter(PAGE, {"source": {"$ne": given}}) is not expected


def test_relative_source_resolves_against_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    stored = os.path.join(str(tmp_path), "x.pdf")
    assert path_matches(stored, "x.pdf") and path_matches(stored, os.path.join("..", tmp_path.name, "x.pdf"))


def test_file_name_falls_back_to_the_source_file_name():
    assert matches_filter(PAGE, {"file_name": "a.pdf"})
    assert not matches_filter(PAGE, {"file_name": "reports"})
    assert matches_filter({**PAGE, "file_name": "own.pdf"}, {"file_name": "own.pdf"})  # its own key wins
    assert not matches_filter({**PAGE, "file_name": "own.pdf"}, {"file_name": "a.pdf"})


@pytest.mark.parametrize(
    "flt",
    [
        {"page": {"$like": 3}},
        {"page": {"in": [3]}},  # a dict value without $: not an operator
        {"$nand": [{"page": 3}]},
        {"$and": {"page": 3}},
        {"$or": []},
        {"$not": [{"page": 3}]},
        {"page": {"$in": 3}},
        {"page": {"$nin": "abc"}},
        {"page": {}},
        {3: "x"},
        "page=3",
    ],
)
def test_unknown_or_malformed_filters_are_typed_errors(flt):
    with pytest.raises(FilterError) as caught:
        validate_filter(flt)
    assert isinstance(caught.value, InvalidInputError) and isinstance(caught.value, MetaEmbedError)


def test_a_predicate_passes_through():
    assert matches_filter(PAGE, lambda m: m["page"] == 3) and validate_filter(None) is None
