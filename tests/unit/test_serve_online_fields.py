"""The online store's request fields as the service validates them
(platform/headwater/serve/online.py)."""

from datetime import datetime
from typing import Literal

from headwater.serve.online import request_fields_of
from headwater.serve.validation import value_problem


def test_contract_types_become_request_fields():
    fields = request_fields_of(
        {
            "transaction_id": str,
            "transacted_at": datetime,
            "amount": float,
            "is_card_present": bool,
            "channel": Literal["online", "pos"],
        }
    )
    assert fields["channel"].kind == "category"
    assert fields["channel"].categories == ("online", "pos")
    assert fields["amount"].kind == "number"
    assert fields["is_card_present"].kind == "number"
    assert fields["transaction_id"].kind == "key"
    assert fields["transacted_at"].kind == "key"


def test_an_unknown_channel_or_a_text_amount_is_refused_before_the_sql_runs():
    fields = request_fields_of({"amount": float, "channel": Literal["online", "pos"]})
    assert "unknown category" in value_problem("atm", fields["channel"])
    assert "must be a number" in value_problem("12.5", fields["amount"])
    assert value_problem(float("nan"), fields["amount"]).startswith("must be a finite number")
    assert value_problem(12.5, fields["amount"]) is None
    assert value_problem("pos", fields["channel"]) is None
