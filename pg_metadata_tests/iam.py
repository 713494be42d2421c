"""Shared pieces of the IAM tests: credentials the loopback RDS proxy accepts, and a clock."""

from __future__ import annotations

import datetime as dt

STATIC_KEYS = {"AKIDIAMUSERTEST01": "iam-user-secret-Zx9"}
REGION = "eu-west-1"
ROLE_ARN = "arn:aws:iam::123456789012:role/pg-catalog-reader"


def secret_for(access_key_id: str) -> str | None:
    """Secret of a static test key, or of temporary credentials moto's STS server issued."""
    if access_key_id in STATIC_KEYS:
        return STATIC_KEYS[access_key_id]
    role = assumed_role(access_key_id)
    return role.secret_access_key if role is not None else None


def assumed_role(access_key_id: str):
    """moto's record of an AssumeRole call (moto's server runs in this test process)."""
    from moto.sts.models import sts_backends

    for account_id in list(sts_backends.keys()):
        for backend in sts_backends[account_id].values():
            role = backend.get_assumed_role_from_access_key(access_key_id)
            if role is not None:
                return role
    return None


class SimulatedClock:
    """A clock tests can move forward; starts at the real time."""

    def __init__(self) -> None:
        self.offset = dt.timedelta()

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset

    def advance(self, **kwargs: float) -> None:
        self.offset += dt.timedelta(**kwargs)
