import pytest

from metaembed_rag import MATRYOSHKA_GROUPS, Budget
from metaembed_rag.budget import resolve_budget
from metaembed_rag.errors import BudgetError, MetaEmbedError


@pytest.mark.parametrize(
    "value",
    [(8, 16), [8, 16], "8,16", " (8, 16) ", "8x16", Budget(8, 16)],
)
def test_parse_accepts_the_documented_forms(value):
    assert Budget.parse(value) == Budget(8, 16)


def test_budget_is_immutable_and_iterable():
    b = Budget(2, 4)
    assert tuple(b) == (2, 4)
    assert str(b) == "2,4"
    with pytest.raises(AttributeError):
        b.r_q = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "value", [(0, 4), (4, 0), (-1, 2), "8;16", "8", "a,b", (1, 2, 3), None, 7, (True, 2), (1.5, 2)]
)
def test_malformed_budgets_raise_budget_error(value):
    with pytest.raises(BudgetError) as info:
        Budget.parse(value)
    assert isinstance(info.value, MetaEmbedError)
    assert isinstance(info.value, ValueError)


def test_validate_names_the_limits():
    with pytest.raises(BudgetError, match=r"r_q=17 .* only 16"):
        Budget(17, 64).validate(max_query=16, max_candidate=64)
    with pytest.raises(BudgetError, match=r"r_c=64 .* only 16"):
        Budget(16, 64).validate(max_query=16, max_candidate=16)
    assert Budget(16, 64).validate(max_query=16, max_candidate=64) == Budget(16, 64)


def test_groups_and_default_resolution():
    assert MATRYOSHKA_GROUPS == ((1, 1), (2, 4), (4, 8), (8, 16), (16, 64))
    assert resolve_budget(None, max_query=16, max_candidate=32) == Budget(16, 32)
    assert resolve_budget(None, max_query=16, max_candidate=64, default="8,16") == Budget(8, 16)
