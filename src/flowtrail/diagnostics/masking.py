"""Keep secret values out of everything that is stored."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

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
        if not self.secrets:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self(k) if isinstance(k, str) else k: self(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self(v) for v in value]
        return value
