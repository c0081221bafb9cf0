"""The service's request checks and its numpy row (headwater.serve): every problem named by row
and field, and categories coded as LightGBM codes them from pandas."""

import math

import numpy as np
import pytest

from headwater.serve.features import RequestFeatureSource, RequestField
from headwater.serve.model import ServedModel
from headwater.serve.validation import InvalidRequest, check_rows, request_rows

SOURCE = RequestFeatureSource(
    keys=("id",),
    features=("amount", "is_night", "channel"),
    categories={"channel": ("online", "pos")},
    score_date="day",
)
FIELDS = SOURCE.request_fields()
GOOD = {"id": "t1", "day": "2025-01-02", "amount": 3.5, "is_night": True, "channel": "pos"}


def _problems(rows, fields=FIELDS):
    with pytest.raises(InvalidRequest) as caught:
        check_rows(rows, fields)
    return [p.as_dict() for p in caught.value.problems]


def test_a_good_row_passes_and_the_score_date_and_nulls_are_optional():
    check_rows([GOOD, {k: v for k, v in GOOD.items() if k != "day"}], FIELDS)
    check_rows([{**GOOD, "amount": None, "id": 7}], FIELDS)
    assert FIELDS["day"] == RequestField("date", required=False)


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"amount": "1.5"}, "amount", "must be a number"),
        ({"amount": math.nan}, "amount", "finite"),
        ({"amount": math.inf}, "amount", "finite"),
        ({"channel": "atm"}, "channel", "unknown category 'atm'; the model knows: online, pos"),
        ({"channel": 3}, "channel", "must be a string"),
        ({"channel": None}, "channel", "must not be null"),
        ({"id": 1.5}, "id", "string or an integer"),
        ({"day": "yesterday"}, "day", "YYYY-MM-DD"),
        ({"colour": "red"}, "colour", "unknown field"),
    ],
)
def test_each_bad_value_is_named_by_row_and_field(change, field, words):
    (problem,) = _problems([GOOD, {**GOOD, **change}])
    assert problem["row"] == 1 and problem["field"] == field
    assert words in problem["message"]


def test_a_missing_field_is_named_and_problems_are_listed_for_every_row():
    rows = [{k: v for k, v in GOOD.items() if k != "amount"}, {**GOOD, "channel": "x"}]
    assert [(p["row"], p["field"]) for p in _problems(rows)] == [(0, "amount"), (1, "channel")]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ([GOOD], "the body must be"),
        ({"rows": []}, "non-empty list"),
        ({"rows": [GOOD], "row": GOOD}, "either"),
        ({"rows": [GOOD, 3]}, "must be an object"),
        ({"rows": [GOOD] * 4}, "at most 3"),
    ],
)
def test_bodies_that_are_not_rows_or_too_many_are_refused(body, words):
    with pytest.raises(InvalidRequest, match=words):
        request_rows(body, max_rows=3)
    assert request_rows({"row": GOOD}, 3) == [GOOD]


def test_the_numpy_row_codes_categories_as_lightgbm_does_from_pandas():
    model = ServedModel(
        name="m",
        registered_name="headwater.m",
        version="1",
        alias="champion",
        booster=None,
        features=("amount", "is_night", "channel"),
        categories={"channel": ("online", "pos")},
    )
    matrix = model.matrix(
        [GOOD, {**GOOD, "is_night": False, "channel": "online"}, {"amount": None}]
    )
    expected = np.array([[3.5, 1.0, 1.0], [3.5, 0.0, 0.0], [np.nan, np.nan, np.nan]])
    np.testing.assert_array_equal(matrix, expected)
    assert SOURCE.features([GOOD]) == [{"amount": 3.5, "is_night": True, "channel": "pos"}]
