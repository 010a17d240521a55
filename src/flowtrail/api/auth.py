"""Bearer-token auth: tokens with a role, ``read`` or ``operator``.

A ``read`` token reads everything; an ``operator`` token may also cancel, resume, retry,
start runs and prune. The token comes in ``Authorization: Bearer <token>`` or, for the
browser UI, in the ``flowtrail_token`` cookie. With no tokens configured (a server bound
to loopback without ``--tokens``, or ``--no-auth``) every caller is an operator.

Tokens are read from a file (``--tokens FILE``) or ``FLOWTRAIL_API_TOKENS``:

- a file holds one ``ROLE TOKEN`` per line (blank lines and ``#`` comments skipped), or a
  JSON list of ``{"role": ..., "token": ...}`` objects;
- the variable holds ``ROLE:TOKEN`` pairs separated by commas.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from flowtrail.api.problems import Problem, problem
from flowtrail.errors import SettingsError

COOKIE = "flowtrail_token"
ENV = "FLOWTRAIL_API_TOKENS"
MIN_TOKEN_CHARS = 16
_CHALLENGE = 'Bearer realm="flowtrail"'


class Role(StrEnum):
    READ = "read"
    OPERATOR = "operator"


@dataclass(frozen=True)
class Tokens:
    """The configured tokens. ``role_of`` compares the given token with every one
    (``hmac.compare_digest``), so the time taken says nothing about which one matched."""

    entries: tuple[tuple[Role, bytes], ...]

    def role_of(self, given: str) -> Role | None:
        raw = given.encode("utf-8", "surrogateescape")
        found = None
        for role, token in self.entries:
            if hmac.compare_digest(raw, token) and found is None:
                found = role
        return found

    @classmethod
    def parse(cls, pairs: Iterable[tuple[str, str]], source: str) -> Tokens:
        entries = []
        for role, token in pairs:
            try:
                known = Role(role)
            except ValueError:
                raise SettingsError(
                    f"{source}: unknown role '{role}' (roles: read, operator)"
                ) from None
            if len(token) < MIN_TOKEN_CHARS or any(c.isspace() for c in token):
                raise SettingsError(
                    f"{source}: a {role} token must be at least {MIN_TOKEN_CHARS} characters "
                    "without spaces (make one with `python -c 'import secrets; "
                    "print(secrets.token_urlsafe(32))'`)"
                )
            entries.append((known, token.encode()))
        if not entries:
            raise SettingsError(f"{source}: no tokens in it")
        return cls(tuple(entries))

    @classmethod
    def from_file(cls, path: Path) -> Tokens:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SettingsError(f"cannot read the tokens file {path}: {exc.strerror}") from None
        return cls.parse(_pairs_in(text, str(path)), str(path))

    @classmethod
    def from_env(cls, value: str) -> Tokens:
        pairs = []
        for item in value.split(","):
            if not item.strip():
                continue
            role, sep, token = item.strip().partition(":")
            if not sep:
                raise SettingsError(f"{ENV}: expected ROLE:TOKEN pairs separated by commas")
            pairs.append((role.strip(), token.strip()))
        return cls.parse(pairs, ENV)


def _pairs_in(text: str, source: str) -> list[tuple[str, str]]:
    if text.lstrip().startswith("["):
        try:
            data: Any = json.loads(text)
            return [(str(item["role"]), str(item["token"])) for item in data]
        except (ValueError, KeyError, TypeError):
            raise SettingsError(
                f'{source}: expected a JSON list of {{"role": ..., "token": ...}} objects'
            ) from None
    pairs = []
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) != 2:
            raise SettingsError(f"{source}:{number}: expected `ROLE TOKEN`")
        pairs.append((words[0], words[1]))
    return pairs


def _given_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        raise _unauthorized("the Authorization header must be `Bearer <token>`")
    cookie = request.cookies.get(COOKIE) or None
    if cookie is not None and request.method not in SAFE_METHODS:
        _same_origin(request)
    return cookie


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _same_origin(request: Request) -> None:
    """A browser sends the cookie with a form another site posts here (cross-site request
    forgery); it also says where the request comes from (``Origin``), so a cookie-borne
    change from another origin is refused. Clients that send no ``Origin`` (scripts) are
    not browsers acting for someone else."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    host = request.headers.get("host", "")
    if origin.split("://", 1)[-1].rstrip("/") != host:
        raise problem(
            403,
            "cross_origin",
            f"a request from {origin} may not use this server's {COOKIE} cookie to change "
            "anything; send the token in the Authorization header",
        )


def _unauthorized(detail: str) -> Problem:
    return problem(401, "unauthorized", detail, headers={"WWW-Authenticate": _CHALLENGE})


def caller_role(request: Request) -> Role:
    """The caller's role; 401 without a valid token when auth is on."""
    tokens: Tokens | None = request.app.state.tokens
    if tokens is None:
        return Role.OPERATOR
    given = _given_token(request)
    if given is None:
        raise _unauthorized(
            "this server needs a token: send `Authorization: Bearer <token>` "
            f"(or the {COOKIE} cookie)"
        )
    role = tokens.role_of(given)
    if role is None:
        raise _unauthorized("the token is not valid")
    return role


# Declared for OpenAPI only (its "Authorize" in /docs); ``caller_role`` reads the token.
_BEARER = HTTPBearer(auto_error=False, description="A `read` or `operator` token.")
_COOKIE = APIKeyCookie(name=COOKIE, auto_error=False, description="The token, for the web UI.")
Bearer = Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)]
Cookie = Annotated[str | None, Security(_COOKIE)]


def require_reader(request: Request, _bearer: Bearer = None, _cookie: Cookie = None) -> Role:
    """Any valid token (or none needed)."""
    return caller_role(request)


def require_operator(request: Request, _bearer: Bearer = None, _cookie: Cookie = None) -> Role:
    """An operator token: cancel, resume, retry, start, prune."""
    role = caller_role(request)
    if role is not Role.OPERATOR:
        raise problem(
            403, "forbidden", "this needs an operator token; the token given is read-only"
        )
    return role


Reader = Annotated[Role, Depends(require_reader)]
Operator = Annotated[Role, Depends(require_operator)]
