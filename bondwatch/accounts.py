"""Accounts for the dashboard: names, roles, factories and scrypt password hashes in the database;
and API tokens, with which the factory's systems post scan events (and nothing else).

A factory operator belongs to exactly one factory (the `factory` of its cameras in the site
file) and sees only that factory's cameras and alerts; customs staff belong to none and see all.
A token of a factory posts scans for that factory's stations only. Tokens are random 256-bit
secrets stored as SHA-256 digests (a secret that long needs no slow hash), shown once.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
import time
from typing import Literal

from sqlalchemy import Float, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from bondwatch.db import make_engine, migrate
from bondwatch.site import ID_PATTERN

Role = Literal["admin", "officer", "operator"]
ROLES: tuple[Role, ...] = ("admin", "officer", "operator")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(200))
    factory: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created: Mapped[float] = mapped_column(Float)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    factory: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created: Mapped[float] = mapped_column(Float)


TOKEN_PREFIX = "bwt_"  # makes a leaked token recognisable to secret scanners and people


class AccountError(Exception):
    pass


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        _, salt, digest = stored.split("$")
    except ValueError:
        return False
    got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), **_SCRYPT)
    return hmac.compare_digest(got.hex(), digest)


@functools.cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


class Accounts:
    def __init__(self, db_url: str):
        migrate(db_url)
        self.engine = make_engine(db_url)

    def add(self, name: str, role: str, password: str, factory: str | None = None) -> None:
        if role not in ROLES:
            raise AccountError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
        if role == "operator" and factory is None:
            raise AccountError("an operator account needs a factory: the site's cameras it may see")
        if role != "operator" and factory is not None:
            raise AccountError(f"only an operator belongs to a factory; an {role} sees every factory")
        if factory is not None and not re.match(ID_PATTERN, factory):
            raise AccountError(f"factory {factory!r} is not an id: use lower-case letters, digits, _ and -")
        if not name or len(name) > 64:
            raise AccountError("a user name needs 1 to 64 characters")
        if len(password) < 8:
            raise AccountError("a password needs at least 8 characters")
        with Session(self.engine) as s, s.begin():
            if s.get(User, name) is not None:
                raise AccountError(f"user {name!r} already exists")
            s.add(
                User(
                    name=name, role=role, password_hash=hash_password(password),
                    created=time.time(), factory=factory,
                )
            )  # fmt: skip

    def verify(self, name: str, password: str) -> User | None:
        with Session(self.engine) as s:
            user = s.get(User, name)
        # Hash even for an unknown name, so the response time does not reveal which names exist.
        ok = check_password(password, user.password_hash if user else _dummy_hash())
        return user if user is not None and ok else None

    def count(self) -> int:
        with Session(self.engine) as s:
            return len(s.scalars(select(User.name)).all())

    # API tokens

    def add_token(self, name: str, factory: str | None = None) -> str:
        """A new token for a factory's system; returns the secret, which is not kept."""
        if not re.match(ID_PATTERN, name):
            raise AccountError(f"token name {name!r} is not an id: use lower-case letters, digits, _ and -")
        if factory is not None and not re.match(ID_PATTERN, factory):
            raise AccountError(f"factory {factory!r} is not an id: use lower-case letters, digits, _ and -")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with Session(self.engine) as s, s.begin():
            if s.get(ApiToken, name) is not None:
                raise AccountError(f"token {name!r} already exists (revoke it first to replace it)")
            s.add(ApiToken(name=name, digest=_digest(secret), factory=factory, created=time.time()))
        return secret

    def token(self, secret: str) -> ApiToken | None:
        """The token whose secret this is, if it exists and was not revoked."""
        if not secret.startswith(TOKEN_PREFIX):
            return None
        with Session(self.engine) as s:
            return s.scalars(select(ApiToken).where(ApiToken.digest == _digest(secret))).first()

    def tokens(self) -> list[ApiToken]:
        with Session(self.engine) as s:
            return list(s.scalars(select(ApiToken).order_by(ApiToken.name)))

    def revoke_token(self, name: str) -> None:
        with Session(self.engine) as s, s.begin():
            token = s.get(ApiToken, name)
            if token is None:
                raise AccountError(f"no token {name!r}")
            s.delete(token)
