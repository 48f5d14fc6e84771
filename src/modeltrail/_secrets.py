"""Secrets never reach the ledger: what looks like a credential is replaced by ``***`` before it is stored.

Three places a secret hides, three rules:

* a name (a param key, a dict key, a dataclass / namedtuple / ``argparse.Namespace`` field):
  it is split into words (on ``_ - .``, spaces and camelCase) and is secret when a word is a
  credential word (``password``, ``pwd``, ``secret``, ``credentials``, ``auth``, ``apikey``...),
  when two words say so together (``api key``, ``private key``, ``access key``), or when it ends
  in ``token`` / ``pass`` (``api_token``, ``db_pass``; not ``max_tokens``, ``tokenizer``,
  ``num_passes``, ``bypass_cache``, ``author``);
* a value shaped like a URL: its password (``scheme://user:PASSWORD@host``) is masked, whatever
  the name it is stored under;
* a command line: the value after ``--password``, ``--api-key``, ``--token=``... (any option whose
  name is secret) is masked, and so is every URL password in it.

Only the standard library: every layer above may use it.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import re
import types
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

REDACTED = "***"

#: A word that names a credential wherever it stands in a name.
_WORDS = frozenset(
    {
        "password", "passwords", "passwd", "pwd", "passphrase", "secret", "secrets", "credential", "credentials",
        "auth", "oauth", "apikey", "accesskey", "privatekey", "secretkey", "bearer", "cookie",
    }
)  # fmt: skip
#: Two words that name a credential together: ``api_key``, ``privateKey``, ``aws_access_key``.
_PAIRS = frozenset({("api", "key"), ("access", "key"), ("private", "key"), ("secret", "key"), ("signing", "key")})
#: Words that name a credential only as the last word: ``api_token``, ``db_pass``, ``hf_token``.
_LAST = frozenset({"token", "pass", "pw"})
#: ``max_token``, ``num_token``: a count, not a credential.
_COUNTS = frozenset({"max", "min", "num", "n"})
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")

#: ``scheme://user:password@`` in any text; the password runs to the last ``@`` before a space or quote,
#: so an unencoded ``@`` in it (``app:p@ss@db``) is masked whole.
_PASSWORD_IN_URL = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s'\"]*):(?P<pw>[^\s'\"]*)@")


def words(name: str) -> list[str]:
    """``"dbPassword"`` -> ``["db", "password"]``; ``"API_KEY"`` -> ``["api", "key"]``."""
    return [w.lower() for w in _WORD.findall(name)]


def is_secret_key(name: str) -> bool:
    """Whether ``name`` names a credential (see the module docstring for the rules)."""
    parts = words(str(name))
    if not parts:
        return False
    if any(w in _WORDS for w in parts) or any(pair in _PAIRS for pair in itertools.pairwise(parts)):
        return True
    return parts[-1] in _LAST and not (len(parts) > 1 and parts[-2] in _COUNTS)


def mask_url_passwords(text: str) -> str:
    """Every ``scheme://user:password@`` in ``text`` with the password replaced by ``***``."""
    if "://" not in text:
        return text
    masked, found = _PASSWORD_IN_URL.subn(lambda m: f"{m.group('head')}:{REDACTED}@", text)
    return masked if found else text


def redact_argv(argv: Sequence[str]) -> list[str]:
    """A command line with the values of secret options and the passwords of URLs masked.

    ``--password hunter2``, ``--password=hunter2``, ``--api-key X``, ``--db-uri mysql://u:pw@h/x``.
    A single-dash short option (``-p``) is left alone: its meaning is the script's own.
    """
    out: list[str] = []
    hide_next = False
    for arg in map(str, argv):
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        if arg.startswith("--") and len(arg) > 2:
            name, eq, _ = arg.partition("=")
            if is_secret_key(name[2:]):
                if eq:
                    out.append(f"{name}={REDACTED}")
                else:
                    out.append(arg)
                    hide_next = True
                continue
        out.append(mask_url_passwords(arg))
    return out


def _fields(value: Any, depth: int) -> dict[str, Any] | None:
    """The named fields of a record-like object (dataclass, Namespace, plain object), or None."""
    if isinstance(value, type):
        return None
    if dataclasses.is_dataclass(value):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value) if f.repr}
    if isinstance(value, (argparse.Namespace, types.SimpleNamespace)):
        return dict(vars(value))
    attrs = getattr(value, "__dict__", None)
    # Any other object by its public attributes, near the top only: a param may hold a whole model.
    if depth < 3 and isinstance(attrs, dict) and attrs and not callable(value) and not hasattr(value, "shape"):
        return {k: v for k, v in attrs.items() if not k.startswith("_")}
    return None


def redact(value: Any, *, _depth: int = 0) -> Any:
    """``value`` with every secret inside it masked, ready for :func:`modeltrail._values.to_jsonable`.

    Mappings and sequences keep their shape (a namedtuple becomes a tuple of its values); a record-like
    object holding a secret becomes the text ``Name(field=..., secret='***')``; others come back as they are.
    """
    if _depth > 64:  # deeper than stored JSON may nest: to_jsonable refuses it anyway
        return value
    if isinstance(value, str):
        return mask_url_passwords(value)
    if isinstance(value, Mapping):
        masked = {k: REDACTED if is_secret_key(str(k)) else redact(v, _depth=_depth + 1) for k, v in value.items()}
        return value if _unchanged(value.values(), masked.values()) else masked
    names = getattr(value, "_fields", None)
    if isinstance(value, tuple) and isinstance(names, tuple):  # a namedtuple
        pairs = zip(names, value, strict=True)
        items = tuple(REDACTED if is_secret_key(n) else redact(v, _depth=_depth + 1) for n, v in pairs)
        return value if _unchanged(value, items) else items
    if type(value) in (list, tuple):
        items = type(value)(redact(v, _depth=_depth + 1) for v in value)
        return value if _unchanged(value, items) else items
    if isinstance(value, (set, frozenset, deque)):  # stored as a list: masked as one
        listed = [redact(v, _depth=_depth + 1) for v in value]
        return value if _unchanged(value, listed) else listed
    if isinstance(value, (bytes, bytearray)):
        text = bytes(value).decode("utf-8", "backslashreplace")
        masked_text = mask_url_passwords(text)
        return value if masked_text == text else masked_text
    try:
        fields = _fields(value, _depth)
    except Exception:  # an odd object (a proxy, a lazy attribute) is stored as before, never a crash
        return value
    if fields is None:
        return value
    masked = {k: REDACTED if is_secret_key(k) else redact(v, _depth=_depth + 1) for k, v in fields.items()}
    if _unchanged(fields.values(), masked.values()):
        return value
    shown = (
        f"{k}='{REDACTED}'" if is_secret_key(k) else f"{k}={v}" if _is_record_text(fields[k], v) else f"{k}={v!r}"
        for k, v in masked.items()
    )
    return f"{type(value).__qualname__}({', '.join(shown)})"


def _unchanged(before: Iterable[Any], after: Iterable[Any]) -> bool:
    """Nothing was masked: every item is the very object it was (so the value is stored exactly as before)."""
    return all(a is b for a, b in zip(before, after, strict=True))


def _is_record_text(original: Any, masked: Any) -> bool:
    """A nested record that :func:`redact` turned into its masked text (shown without quotes)."""
    return isinstance(masked, str) and not isinstance(original, str)
