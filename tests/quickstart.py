"""The quickstart on kind, read the way a reader follows it, for the tests.

``docs/quickstart.md`` and the README's "Quickstart on kind" section give shell commands in
```` ```bash ```` blocks; ``manifests/quickstart/`` holds the objects they apply and the Helm
values they install the chart with. The tests check the objects, and check them against
the commands, so that the two cannot drift apart.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "manifests" / "quickstart"
DOC = ROOT / "docs" / "quickstart.md"
README = ROOT / "README.md"
#: The Helm values of the quickstart: outside manifests/quickstart/, so that
#: ``kubectl apply -f manifests/quickstart/`` takes every file there.
VALUES = ROOT / "examples" / "quickstart-values.yaml"

Object = dict[str, Any]

_BLOCK = re.compile(r"^```bash\n(.*?)^```", re.MULTILINE | re.DOTALL)


def objects() -> list[tuple[str, Object]]:
    """(file name, object) for every object in manifests/quickstart/."""
    return [
        (path.name, doc)
        for path in sorted(QUICKSTART.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8"))
        if doc
    ]


def values() -> Object:
    loaded: Object = yaml.safe_load(VALUES.read_text(encoding="utf-8"))
    return loaded


def the(kind: str, name: str | None = None) -> Object:
    """The one quickstart object of this kind (and name)."""
    found = [o for _, o in objects() if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''} in manifests/quickstart/, got {len(found)}"
    return found[0]


@dataclass(frozen=True)
class Broker:
    user: str
    password: str
    host: str
    port: int


def broker(url: str) -> Broker:
    parts = urlsplit(url)
    assert parts.scheme == "amqp", url
    assert parts.username, url
    assert parts.password, url
    assert parts.hostname, url
    return Broker(parts.username, parts.password, parts.hostname, parts.port or 5672)


def blocks(path: Path, heading: str | None = None) -> list[list[list[str]]]:
    """The bash blocks of a Markdown file (or of one ``## heading`` section of it), each a
    list of commands split into words; continuation lines joined, comments dropped."""
    text = path.read_text(encoding="utf-8")
    if heading is not None:
        sections = re.split(r"^## ", text, flags=re.MULTILINE)
        (text,) = [s for s in sections if s.startswith(heading + "\n")]
    found = []
    for block in _BLOCK.findall(text):
        joined = block.replace("\\\n", " ")
        commands = [shlex.split(line, comments=True) for line in joined.splitlines()]
        found.append([words for words in commands if words])
    return found


def commands(path: Path = DOC) -> list[list[str]]:
    """Every command of the file's bash blocks, in order."""
    return [command for block in blocks(path) for command in block]


def find(prefix: list[str], path: Path = DOC) -> list[list[str]]:
    """The commands that start with these words."""
    return [c for c in commands(path) if c[: len(prefix)] == prefix]


def option(command: list[str], *names: str) -> str | None:
    """The value of an option (``-n photos``, ``--namespace=photos``) in a command, if given."""
    for i, word in enumerate(command):
        if word in names:
            return command[i + 1]
        for name in names:
            if name.startswith("--") and word.startswith(name + "="):
                return word.split("=", 1)[1]
    return None


def options(command: list[str], *names: str) -> list[str]:
    """Every value of a repeatable option (``-f a.yaml -f b.yaml``)."""
    return [command[i + 1] for i, word in enumerate(command) if word in names]


def helm_install() -> list[str]:
    """The quickstart's ``helm install`` command (the same wherever the docs give it)."""
    found = find(["helm", "install"])
    assert found
    assert all(command == found[0] for command in found), found
    return found[0]
