"""The chain's authenticate-and-rate stage: keys checked before anything else, budgets
charged per key once a request is admitted."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel.errors import APIError
from kernel.keys import KeyStore
from serving.access import AccessControl
from tests.unit.serving.pipeline.conftest import make_config


def _access(tmp_path: Path) -> tuple[AccessControl, str, str]:
    config = make_config(tmp_path, security={"auth": "on", "default_rpm": 2})
    keys = KeyStore(config.security.keys_file)
    client, _ = keys.create("client", "client")
    admin, _ = keys.create("admin", "admin")
    return AccessControl(config), client, admin


def test_callers_are_authenticated_and_admin_scope_is_checked(tmp_path: Path) -> None:
    access, client, admin = _access(tmp_path)
    for headers, status in (({}, 401), ({"authorization": "Bearer nope"}, 401)):
        with pytest.raises(APIError) as err:
            access.caller(headers)
        assert err.value.status == status
    assert access.caller({"authorization": f"Bearer {client}"}).scope == "client"
    with pytest.raises(APIError) as err:
        access.caller({"authorization": f"Bearer {client}"}, admin=True)
    assert err.value.status == 403
    assert access.caller({"x-api-key": admin}, admin=True).scope == "admin"


def test_each_key_has_its_own_budget_and_is_told_when_to_retry(tmp_path: Path) -> None:
    access, client, admin = _access(tmp_path)
    first = access.caller({"authorization": f"Bearer {client}"})
    other = access.caller({"authorization": f"Bearer {admin}"})
    access.charge(first, 10)
    access.charge(first, 10)
    with pytest.raises(APIError) as err:
        access.charge(first, 10)
    assert err.value.status == 429 and int(err.value.headers["Retry-After"]) >= 1
    access.charge(other, 10)  # another key is not slowed down


def test_with_keys_off_clients_are_open_and_admin_still_needs_an_admin_key(
        tmp_path: Path) -> None:
    config = make_config(tmp_path, security={"auth": "off"})
    keys = KeyStore(config.security.keys_file)
    client, _ = keys.create("client", "client")
    admin, _ = keys.create("admin", "admin")
    access = AccessControl(config)
    assert access.caller({}).scope == "client"
    for headers, status in (({}, 401), ({"authorization": f"Bearer {client}"}, 403)):
        with pytest.raises(APIError) as err:
            access.caller(headers, admin=True)
        assert err.value.status == status
    assert access.caller({"authorization": f"Bearer {admin}"}, admin=True).scope == "admin"
