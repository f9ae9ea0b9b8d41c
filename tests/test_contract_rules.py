"""One home per rule: request Structs refuse bad names when they are decoded, in readable words."""

from __future__ import annotations

import msgspec
import pytest

from foto3d.libs.bus.micro import decode_request
from foto3d.proto.api import ServiceError
from foto3d.proto.gateway import TOKENS_ISSUE, TOKENS_REVOKE
from foto3d.proto.jobs import SubmitRequest, TrainOptions, TrainOverrides, readable_decode_error
from foto3d.proto.naming import OBJECT_ID_RE
from foto3d.proto.objects import RESUBMIT, SHOW, ResubmitRequest
from foto3d.proto.rules import ObjectId


@pytest.mark.parametrize(
    ("api", "body", "said"),
    [
        (
            TOKENS_ISSUE,
            b'{"customer": "Big Co", "kind": "secret"}',
            "bad request: customer: a customer id is 1-20 lowercase letters and digits",
        ),
        (
            TOKENS_ISSUE,
            b'{"customer": "acme", "kind": "secret", "models": ["acme-chair"]}',
            "bad request: models[0]: not an object id by the naming standard <customer>-<object>-<NNN>",
        ),
        (
            TOKENS_ISSUE,
            b'{"customer": "acme", "kind": "publishable", "origins": ["https://x.com/path"]}',
            "bad request: origins[0]: an origin is scheme://host[:port] with no path",
        ),
        (TOKENS_ISSUE, b'{"customer": "acme", "kind": "secret", "expires_in_days": 0}', "expires_in_days"),
        (TOKENS_REVOKE, b'{"credential_id": "nope"}', "credential id is 16 lowercase hexadecimal digits"),
        (SHOW, b'{"object_id": "Acme Chair"}', "object_id: not an object id by the naming standard"),
        (RESUBMIT, b'{"object_id": "acme-chair-001", "options": {"steps": 5}}', "options steps"),
    ],
)
def test_a_request_that_breaks_a_rule_is_refused_by_decoding(api: object, body: bytes, said: str) -> None:
    with pytest.raises(ServiceError) as refused:
        decode_request(api, body)  # type: ignore[arg-type]
    assert said in refused.value.description


def test_submissions_and_the_naming_standard_are_one_rule() -> None:
    for good in ("acme-chair-001", "acme-desk-lamp-0042", "a1-b2-c3-123"):
        assert msgspec.convert(good, ObjectId) == good and OBJECT_ID_RE.fullmatch(good)
    for bad in ("acme-001", "Acme-chair-001", "acme-chair-01", "acme--chair-001", "acme-chair-٠٠١"):
        assert OBJECT_ID_RE.fullmatch(bad) is None
        with pytest.raises(msgspec.ValidationError) as refused:
            msgspec.json.decode(msgspec.json.encode({"object_id": bad, "dataset": "/d"}), type=SubmitRequest)
        assert "naming standard" in readable_decode_error(refused.value)


def test_a_resubmission_overrides_only_what_it_sets_within_the_options_bounds() -> None:
    last = TrainOptions(steps=2000, reduce_keep=0.3)
    req = msgspec.json.decode(
        b'{"object_id": "acme-chair-001", "options": {"sh_degree": 1}}', type=ResubmitRequest
    )
    assert req.options.over(last) == TrainOptions(steps=2000, reduce_keep=0.3, sh_degree=1)
    assert TrainOverrides().over(last) == last
    with pytest.raises(msgspec.ValidationError) as refused:
        msgspec.convert({"object_id": "acme-chair-001", "options": {"reduce_keep": 2}}, ResubmitRequest)
    assert readable_decode_error(refused.value).startswith("option --reduce-keep:")
