"""Keep secret values out of everything that is stored."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flowtrail.errors import MissingSecretError

MASK = "***"
_MIN_SECRET_LENGTH = 3  # masking "a" or "" everywhere would destroy the record


class Masker:
    def __init__(self, secrets: Iterable[str]) -> None:
        values = {s for s in secrets if isinstance(s, str) and len(s) >= _MIN_SECRET_LENGTH}
        # longest first, so a secret that contains another is masked whole
        self.secrets = sorted(values, key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def text(self, value: str) -> str:
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        return value

    def __call__(self, value: Any) -> Any:
        return map_strings(value, self.text) if self.secrets else value


_SEAL_OPEN, _SEAL_CLOSE = "\u2063«secret:", "»\u2063"
_SEALED = re.compile(re.escape(_SEAL_OPEN) + r"(?P<name>[^»]+)" + re.escape(_SEAL_CLOSE))


class Sealer:
    """Keeps secrets out of a pause snapshot without losing them: each secret value is
    replaced by a reference to its *name*, and a resume puts the current value back."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        usable = {n: v for n, v in secrets.items() if isinstance(v, str) and len(v) >= 3}
        self.by_value = sorted(usable.items(), key=lambda item: len(item[1]), reverse=True)
        self.by_name = dict(usable)

    def seal(self, value: Any) -> Any:
        return map_strings(value, self._seal_text) if self.by_value else value

    def unseal(self, value: Any) -> Any:
        return map_strings(value, self._unseal_text)

    def _seal_text(self, text: str) -> str:
        for name, secret in self.by_value:
            if secret in text:
                text = text.replace(secret, f"{_SEAL_OPEN}{name}{_SEAL_CLOSE}")
        return text

    def _unseal_text(self, text: str) -> str:
        if _SEAL_OPEN not in text:
            return text

        def put_back(match: re.Match[str]) -> str:
            name = match["name"]
            if name not in self.by_name:
                raise MissingSecretError(name)
            return self.by_name[name]

        return _SEALED.sub(put_back, text)


def map_strings(value: Any, fn: Callable[[str], str]) -> Any:
    """``value`` with ``fn`` applied to every string in it, keys included (the one walk that
    masking, sealing and cleaning a record share); tuples come back as lists, as in JSON."""
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, dict):
        return {
            map_strings(k, fn) if isinstance(k, str) else k: map_strings(v, fn)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [map_strings(v, fn) for v in value]
    return value
