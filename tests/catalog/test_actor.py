"""One person, one actor name: page actions and CLI actions of the same person agree.

Pages record the signed-in staff account. The CLI records `--as`, else FOTO3D_USER, else the
staff account the host login is linked to (`foto3d users link`; whoever started the first `up`
is linked to `admin`), else the login name.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path

from foto3d.libs.auth import UserStore
from foto3d.libs.auth.users import account_for_login
from foto3d.libs.bus.connection import CREDS_ENV
from foto3d.libs.config import Settings
from testkit.identities import creds_for
from testkit.running import running_services
from tests.catalog.helpers import PASSWORD, call, signed_in
from tests.catalog.test_submit_checks import foto3d


def _env() -> dict[str, str]:
    """No FOTO3D_* setting that could name the actor; only the staff key the bus asks for."""
    plain = {k: v for k, v in os.environ.items() if not k.startswith("FOTO3D_")}
    return {**plain, CREDS_ENV: str(creds_for("staff"))}


async def test_page_and_cli_actions_of_one_person_carry_one_name(settings: Settings) -> None:
    login = getpass.getuser()
    users_db = settings.data_dir / "auth" / "users.db"
    settings.raw["catalog"] = {"create_admin": True}
    async with running_services(settings, ["catalog"]) as rt:
        # the first start made `admin` and linked the login that started it
        assert account_for_login(users_db, login) == "admin"
        await UserStore.in_data_dir(settings.data_dir).add("maria", PASSWORD, "Maria")
        rc, out, err = await foto3d(settings, "users", "link", "maria", env=_env())
        assert rc == 0 and f"the login {login} now acts as maria" in out, err
        rc, out, err = await foto3d(settings, "users", "list", env=_env())
        assert rc == 0 and f"logins {login}" in next(x for x in out.splitlines() if x.startswith("maria")), (
            out
        )

        # the CLI, with no --as and no FOTO3D_USER
        rc, _, err = await foto3d(settings, "objects", "customer-add", "acme", "--name", "Acme", env=_env())
        assert rc == 0, err
        rc, oid, err = await foto3d(
            settings, "objects", "register", "--customer", "acme", "--name", "Desk", env=_env()
        )
        assert rc == 0, err
        # the page, signed in as maria
        s = await signed_in(rt, settings, "maria")
        async with s:
            st, _ = await call(
                s, "POST", f"/api/objects/{oid.strip()}/capture", {"dataset": "/data/desk", "photos": "12"}
            )
            assert st == 200
            _, timeline = await call(s, "GET", f"/api/objects/{oid.strip()}/timeline")
        assert [e["actor"] for e in timeline] == ["maria", "maria"], timeline
        # FOTO3D_USER still says who it is when given
        rc, other, err = await foto3d(
            settings, "objects", "register", "--customer", "acme", "--name", "Lamp",
            env={**_env(), "FOTO3D_USER": "rita"},
        )  # fmt: skip
        assert rc == 0, err
        s = await signed_in(rt, settings, "maria")
        async with s:
            _, timeline = await call(s, "GET", f"/api/objects/{other.strip()}/timeline")
        assert [e["actor"] for e in timeline] == ["rita"], timeline


async def test_a_login_without_an_account_is_recorded_as_itself(settings: Settings, tmp_path: Path) -> None:
    assert account_for_login(tmp_path / "none.db", "root") is None
    store = UserStore(tmp_path / "users.db")
    await store.add("admin", PASSWORD)
    assert account_for_login(tmp_path / "users.db", "root") is None
    assert account_for_login(tmp_path / "users.db", "admin") == "admin"  # the same name
    await store.link_login("admin", "root")
    assert account_for_login(tmp_path / "users.db", "root") == "admin"
