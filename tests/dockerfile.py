"""A small reader of the repository's Dockerfile and .dockerignore, for the tests.

Enough of both formats for what the tests check: stages with their instructions,
build arguments, ``ENV`` and ``LABEL`` pairs, and which files the build context holds.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, …
    value: str  # the rest, continuation lines joined

    def pairs(self) -> dict[str, str]:
        """``KEY=VALUE`` pairs of an ENV, LABEL or ARG instruction (quotes removed)."""
        pairs = {}
        for word in shlex.split(self.value):
            key, _, value = word.partition("=")
            pairs[key] = value
        return pairs

    def exec_form(self) -> list[str]:
        """The JSON (exec) form of CMD or ENTRYPOINT; raises for the shell form."""
        words = json.loads(self.value)
        assert isinstance(words, list), f"{self.keyword} {self.value} is not in exec form"
        return [str(w) for w in words]


@dataclass
class Stage:
    base: str  # as written, e.g. ${PYTHON_IMAGE}
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        return {k: v for i in self.all("ENV") for k, v in i.pairs().items()}

    def labels(self) -> dict[str, str]:
        return {k: v for i in self.all("LABEL") for k, v in i.pairs().items()}

    def args(self) -> dict[str, str]:
        return {k: v for i in self.all("ARG") for k, v in i.pairs().items()}


@dataclass
class Dockerfile:
    args: dict[str, str]  # ARGs before the first FROM, with their defaults
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    def base_image(self, stage: Stage) -> str:
        """The stage's base image with global build arguments at their defaults."""
        return re.sub(r"\$\{?(\w+)\}?", lambda m: self.args[m.group(1)], stage.base)

    @classmethod
    def read(cls, path: Path = ROOT / "Dockerfile") -> Dockerfile:
        args: dict[str, str] = {}
        stages: list[Stage] = []
        for instruction in _instructions(path.read_text()):
            if instruction.keyword == "FROM":
                base, *rest = instruction.value.split()
                stages.append(Stage(base=base, name=rest[1] if len(rest) == 2 and rest[0].upper() == "AS" else None))
            elif not stages:
                assert instruction.keyword == "ARG", f"{instruction} before the first FROM"
                args.update(instruction.pairs())
            else:
                stages[-1].instructions.append(instruction)
        return cls(args=args, stages=stages)


def _instructions(text: str) -> Iterator[Instruction]:
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):  # comments may sit between continuation lines
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, value = (pending + line).partition(" ")
        pending = ""
        yield Instruction(keyword.upper(), " ".join(value.split()))
    assert not pending, "the Dockerfile ends in a line continuation"


@dataclass(frozen=True)
class _Rule:
    regex: re.Pattern[str]
    pattern: str
    include: bool  # a `!pattern` puts matching files back into the context


class DockerIgnore:
    """`.dockerignore` semantics: the last matching rule wins, and a rule that
    matches a directory matches everything below it."""

    def __init__(self, text: str) -> None:
        self.rules: list[_Rule] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            include = line.startswith("!")
            pattern = os.path.normpath(line.removeprefix("!").strip()).lstrip("/")
            self.rules.append(_Rule(re.compile(_translate(pattern)), pattern, include))

    @classmethod
    def read(cls, root: Path = ROOT) -> DockerIgnore:
        return cls((root / ".dockerignore").read_text())

    def excludes(self, path: str) -> bool:
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        excluded = False
        for rule in self.rules:
            if any(rule.regex.fullmatch(p) for p in prefixes):
                excluded = not rule.include
        return excluded

    def context(self, root: Path = ROOT) -> list[str]:
        """Every file of the build context, as paths relative to ``root``."""
        files = []
        for folder, dirs, names in os.walk(root):
            here = Path(folder).relative_to(root).as_posix()
            rel = "" if here == "." else here + "/"
            # Skip an excluded folder unless a `!` rule may bring back something inside it.
            dirs[:] = [
                d
                for d in dirs
                if not self.excludes(rel + d)
                or any(r.include and r.pattern.startswith(rel + d + "/") for r in self.rules)
            ]
            files += [rel + n for n in names if not self.excludes(rel + n)]
        return sorted(files)


def _translate(pattern: str) -> str:
    """A .dockerignore pattern as a regular expression (Go's filepath.Match plus ``**``)."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return out
