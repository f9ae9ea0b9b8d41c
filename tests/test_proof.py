"""Who did it is proven, not claimed: management requests carry their sender's signature.

The actor a service records is the identity whose key signed the request (a personal staff
key is its person whatever the body says); an unsigned, forged, replayed, stale or
unknown-key request is refused with an error reply and changes nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
import nats
import pytest

from foto3d.libs.bus.connection import CREDS_ENV, Bus
from foto3d.libs.bus.identities import IdentityStore, new_seed
from foto3d.libs.bus.proof import ProofChecker, RequestSigner, Roster, actor_of
from foto3d.libs.config import Settings
from foto3d.libs.nats_server import NatsServer
from foto3d.proto import gateway
from foto3d.proto.api import ERROR_CODE_HEADER, ERROR_HEADER, FORBIDDEN, UNAUTHORIZED, ServiceError
from foto3d.proto.subjects import SIGNATURE_HEADER
from testkit.identities import TEST_PERSON, creds_for
from testkit.running import running_services
from tests.catalog.test_submit_checks import foto3d

SUBJECT = gateway.TOKENS_ISSUE.subject
BODY = b'{"customer":"acme","kind":"secret"}'


@pytest.fixture
def site(tmp_path: Path) -> IdentityStore:
    store = IdentityStore(tmp_path / "auth")
    store.ensure_site()
    store.add("staff", "ana")
    store.add("trainer", "t1")
    return store


def signer(store: IdentityStore, name: str) -> RequestSigner:
    return RequestSigner.from_file(store.key_path(name))


def refusal(
    checker: ProofChecker, headers: dict[str, str] | None, *, body: bytes = BODY, now: float | None = None
) -> str:
    with pytest.raises(ServiceError) as info:
        checker.check(SUBJECT, headers, body, now=now)
    assert info.value.code == UNAUTHORIZED
    return info.value.description


def test_a_signed_request_names_its_identity_and_nothing_else_passes(site: IdentityStore) -> None:
    checker = ProofChecker(Roster(site.folder / "identities.json"))
    ana = signer(site, "staff-ana")
    assert checker.check(SUBJECT, ana.headers(SUBJECT, BODY), BODY).name == "staff-ana"

    assert "not signed" in refusal(checker, None)
    assert "not signed" in refusal(checker, {})
    assert "does not match" in refusal(checker, ana.headers(SUBJECT, BODY), body=b'{"customer":"evil"}')
    assert "does not match" in refusal(checker, {**ana.headers(SUBJECT, BODY), SIGNATURE_HEADER: "AAAA"})
    other_subject = ana.headers(gateway.TOKENS_REVOKE.subject, BODY)
    assert "does not match" in refusal(checker, other_subject)
    replayed = ana.headers(SUBJECT, BODY)
    checker.check(SUBJECT, replayed, BODY)
    assert "replay" in refusal(checker, replayed)
    old = ana.headers(SUBJECT, BODY, now=1000.0)
    assert "clock" in refusal(checker, old)
    # A key the site never made (it might even connect elsewhere): no identity here.
    stranger = RequestSigner(new_seed())
    assert "no identity of this site" in refusal(checker, stranger.headers(SUBJECT, BODY))
    # Revoked: refused from the roster's next read on.
    site.revoke("staff-ana")
    assert "no identity" in refusal(checker, ana.headers(SUBJECT, BODY))


def test_replays_are_remembered_within_a_bounded_window(site: IdentityStore) -> None:
    checker = ProofChecker(Roster(site.folder / "identities.json"), window_s=60, max_nonces=2)
    staff = signer(site, "staff")
    first = staff.headers(SUBJECT, BODY, now=5000.0)
    checker.check(SUBJECT, first, BODY, now=5000.0)
    checker.check(SUBJECT, staff.headers(SUBJECT, BODY, now=5000.0), BODY, now=5000.0)
    # Full of live nonces: refuse, rather than forget one that could then be replayed.
    assert "too many" in refusal(checker, staff.headers(SUBJECT, BODY, now=5001.0), now=5001.0)
    # Once the window has passed the old nonces go; the old request itself is stale by then.
    checker.check(SUBJECT, staff.headers(SUBJECT, BODY, now=5070.0), BODY, now=5070.0)
    assert "clock" in refusal(checker, first, now=5070.0)


def test_the_actor_comes_from_the_identity(site: IdentityStore) -> None:
    by = {i.name: i for i in site.load()}
    assert actor_of(by["staff-ana"], "mallory") == "ana"  # a person's own key: the body is ignored
    assert actor_of(by["staff-ana"], "") == "ana"
    assert actor_of(by["staff"], "rita") == "rita"  # the site host's key names the host's person
    assert actor_of(by["catalog"], "maria") == "maria"  # the dashboard, for whom it signed in
    assert actor_of(by["up"], "") == "up"
    # the gateway names the customer portal account it signed in, and nobody else
    assert actor_of(by["gateway"], "portal:ana@acme.example") == "portal:ana@acme.example"
    for claimed in ("", "portal:"):
        with pytest.raises(ServiceError):
            actor_of(by["gateway"], claimed)
    for name in ("gateway", "trainer-t1"):
        with pytest.raises(ServiceError) as info:
            actor_of(by[name], "maria")
        assert info.value.code == FORBIDDEN


def _cli_env(key: Path) -> dict[str, str]:
    plain = {k: v for k, v in os.environ.items() if not k.startswith("FOTO3D_")}
    return {**plain, CREDS_ENV: str(key)}


async def test_a_cli_action_records_the_keys_person_not_the_name_it_claims(settings: Settings) -> None:
    settings.raw["token_gateway"] = {"port": 0}
    env = _cli_env(creds_for("staff", TEST_PERSON))
    async with running_services(settings, ["token_gateway", "catalog"], http=False):
        rc, out, err = await foto3d(settings, "objects", "customer-add", "acme", "--as", "mallory", env=env)
        assert rc == 0, err
        rc, oid, err = await foto3d(
            settings,
            "objects",
            "register",
            "--customer",
            "acme",
            "--name",
            "Desk",
            "--as",
            "mallory",
            env=env,
        )
        assert rc == 0, err
        rc, out, err = await foto3d(
            settings,
            "tokens",
            "issue",
            "acme",
            "--as",
            "mallory",
            "--json",
            env={**env, "FOTO3D_USER": "rita"},
        )
        assert rc == 0, err
        issued = msgspec.json.decode(out, type=gateway.IssueReply)
        assert issued.credential.created_by == TEST_PERSON
        rc, out, err = await foto3d(settings, "objects", "timeline", oid.strip(), "--json", env=env)
        assert rc == 0, err
        assert [e["actor"] for e in msgspec.json.decode(out)] == [TEST_PERSON], out


async def test_unsigned_forged_replayed_and_stale_requests_change_nothing(
    settings: Settings, bus: Bus, nats_server: NatsServer
) -> None:
    """Sent from a connection with the staff key, so only the proof can refuse them."""
    settings.raw["token_gateway"] = {"port": 0}
    staff = RequestSigner.from_file(creds_for("staff"))
    body = msgspec.json.encode(gateway.IssueRequest(customer="acme", kind=gateway.CredentialKind.SECRET))
    async with running_services(settings, ["token_gateway"], http=False):
        nc = await nats.connect(nats_server.client_url, nkeys_seed=str(creds_for("staff")))
        try:

            async def ask(headers: dict[str, str] | None, payload: bytes = body) -> tuple[str, str]:
                msg = await nc.request(SUBJECT, payload, timeout=10, headers=headers)
                h = msg.headers or {}
                return h.get(ERROR_CODE_HEADER, ""), h.get(ERROR_HEADER, "")

            signed = staff.headers(SUBJECT, body)
            forged_body = msgspec.json.encode(
                gateway.IssueRequest(customer="other", kind=gateway.CredentialKind.SECRET)
            )
            refused = {
                "unsigned": await ask(None),
                "forged": await ask(signed, forged_body),
                "stranger": await ask(RequestSigner(new_seed()).headers(SUBJECT, body)),
                "stale": await ask(staff.headers(SUBJECT, body, now=1000.0)),
            }
            assert await ask(signed) == ("", "")  # the genuine one, once
            refused["replayed"] = await ask(signed)
        finally:
            await nc.close()
        assert {k: code for k, (code, _) in refused.items()} == dict.fromkeys(refused, UNAUTHORIZED), refused
        assert "replay" in refused["replayed"][1] and "not signed" in refused["unsigned"][1]
        tokens = await bus.call(gateway.TOKENS_LIST, gateway.ListRequest())
        assert [c.customer for c in tokens.credentials] == ["acme"]
