"""The subscription book on its own (a real sqlite file): revisions make replays and
reordering harmless, cancellations and renewals move the end, and what is due when."""

from __future__ import annotations

from pathlib import Path

import pytest

from foto3d.proto.api import ServiceError
from foto3d.proto.subscriptions import Outcome, Requested, SubscriptionSet, SubscriptionState
from foto3d.services.catalog.subscriptions import (
    SubscriptionBook,
    covered_by_others,
    due_end,
    due_warning,
    effective_end,
    next_due,
    view,
)

T0 = 1_800_000_000.0
DAY = 86_400.0


def sub(revision: int, end: float, state: Requested = Requested.ACTIVE, actor: str = "") -> SubscriptionSet:
    return SubscriptionSet(
        subscription_id="crm-42", customer="acme", start=T0 - DAY, end=end, revision=revision, state=state,
        actor=actor,
    )  # fmt: skip


async def test_replays_and_reordering_never_win_over_a_newer_revision(tmp_path: Path) -> None:
    book = await SubscriptionBook(tmp_path / "s.db").open()
    try:
        assert (await book.apply(sub(5, T0 + 10 * DAY, actor="crm"), T0))[0] == Outcome.CREATED
        # the same request again (a retry, a replayed message): nothing changes
        outcome, row = await book.apply(sub(5, T0 + 10 * DAY, actor="someone else"), T0 + 1)
        assert outcome == Outcome.UNCHANGED and row["updated"] == T0 and row["updated_by"] == "crm"
        # an older revision arriving late: ignored
        outcome, row = await book.apply(sub(3, T0 + 1 * DAY), T0 + 2)
        assert outcome == Outcome.STALE and row["end"] == T0 + 10 * DAY and row["revision"] == 5
        # a newer one wins
        outcome, row = await book.apply(sub(9, T0 + 20 * DAY), T0 + 3)
        assert outcome == Outcome.UPDATED and row["end"] == T0 + 20 * DAY
        # the same revision with other content is the sender's bug: refused, nothing changes
        with pytest.raises(ServiceError) as err:
            await book.apply(sub(9, T0 + 30 * DAY), T0 + 4)
        assert err.value.code == "409"
        assert (await book.get("crm-42"))["end"] == T0 + 20 * DAY  # type: ignore[index]
        # another customer cannot take the id over
        with pytest.raises(ServiceError):
            await book.apply(
                SubscriptionSet(
                    subscription_id="crm-42", customer="other", start=T0, end=T0 + 1, revision=99
                ),
                T0,
            )
        outcomes = [h["outcome"] for h in await book.history("crm-42")]
        assert outcomes == ["created", "unchanged", "stale", "updated"]
    finally:
        await book.close()


async def test_cancel_ends_now_and_a_renewal_runs_again(tmp_path: Path) -> None:
    book = await SubscriptionBook(tmp_path / "s.db").open()
    try:
        _, row = await book.apply(sub(1, T0 + 10 * DAY), T0)
        assert not due_end(row, T0) and view(row, T0).state == SubscriptionState.ACTIVE
        _, row = await book.apply(sub(2, T0 + 10 * DAY, state=Requested.CANCELLED), T0 + 100)
        assert effective_end(row) == T0 + 100 and due_end(row, T0 + 100)
        # a replayed cancellation does not move its moment
        _, row = await book.apply(sub(2, T0 + 10 * DAY, state=Requested.CANCELLED), T0 + 500)
        assert effective_end(row) == T0 + 100
        assert await book.mark_ended("crm-42", 2, T0 + 101)
        assert not await book.mark_ended("crm-42", 2, T0 + 102)  # done once
        row = await book.get("crm-42")  # type: ignore[assignment]
        assert row is not None and view(row, T0 + 200).state == SubscriptionState.ENDED
        assert await book.open_rows() == []
        # the CRM renews it: it is open again, with a new end to warn about and carry out
        _, row = await book.apply(sub(3, T0 + 40 * DAY), T0 + 300)
        assert row["ended_at"] is None and view(row, T0 + 300).state == SubscriptionState.ACTIVE
        assert [r["subscription_id"] for r in await book.open_rows()] == ["crm-42"]
        # a change made while the end was being carried out keeps it open (mark_ended names the revision)
        assert not await book.mark_ended("crm-42", 2, T0 + 301)
    finally:
        await book.close()


async def test_a_running_subscription_keeps_what_it_covers(tmp_path: Path) -> None:
    book = await SubscriptionBook(tmp_path / "s.db").open()
    try:

        def contract(sid: str, start: float, end: float, object_id: str = "") -> SubscriptionSet:
            return SubscriptionSet(
                subscription_id=sid, customer="acme", start=start, end=end, revision=1, object_id=object_id
            )

        _, old = await book.apply(contract("old", T0 - 10 * DAY, T0), T0 - 10 * DAY)
        await book.apply(contract("lamp", T0 - DAY, T0 + 30 * DAY, "acme-lamp-001"), T0 - DAY)
        await book.apply(contract("later", T0 + DAY, T0 + 60 * DAY), T0 - DAY)  # not running yet
        assert covered_by_others(await book.rows("acme"), old, T0) == (False, {"acme-lamp-001"})
        _, renewal = await book.apply(contract("renewal", T0 - DAY, T0 + 365 * DAY), T0 - DAY)
        assert covered_by_others(await book.rows("acme"), old, T0)[0]
        # the renewal cancelled: nothing customer-wide runs any more
        await book.apply(
            SubscriptionSet(
                subscription_id="renewal", customer="acme", start=T0 - DAY, end=T0 + 365 * DAY, revision=2,
                state=Requested.CANCELLED,
            ),
            T0 - 1,
        )  # fmt: skip
        assert covered_by_others(await book.rows("acme"), old, T0) == (False, {"acme-lamp-001"})
        assert renewal["subscription_id"] == "renewal"
    finally:
        await book.close()


async def test_what_is_due(tmp_path: Path) -> None:
    book = await SubscriptionBook(tmp_path / "s.db").open()
    try:
        notice = 7 * DAY
        _, row = await book.apply(sub(1, T0 + 10 * DAY), T0)
        assert not due_warning(row, T0, notice)
        assert next_due([row], notice, T0) == T0 + 3 * DAY  # the warning comes first
        assert due_warning(row, T0 + 3 * DAY, notice)
        await book.mark_warned("crm-42", 1, T0 + 10 * DAY)
        row = await book.get("crm-42")  # type: ignore[assignment]
        assert row is not None and not due_warning(row, T0 + 4 * DAY, notice)
        assert next_due([row], notice, T0 + 4 * DAY) == T0 + 10 * DAY
        # a new end date warns again, for the new date
        _, row = await book.apply(sub(2, T0 + 12 * DAY), T0 + 4 * DAY)
        assert due_warning(row, T0 + 5 * DAY + 1, notice)
        assert not due_warning(row, T0 + 12 * DAY, notice) and due_end(row, T0 + 12 * DAY)
    finally:
        await book.close()
