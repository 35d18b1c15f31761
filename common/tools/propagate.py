"""Carry a fix made in stage N into every later stage that held the same code.

`make propagate` (no arguments): for each stage file changed in the work tree against HEAD, copy the
new version into each later stage whose copy was identical to the old version at HEAD.
`--check [--since REV]`: for every commit since REV (default: the first), fail if a commit changed a
stage file but left a later stage's identical copy behind. A commit may exempt a path on purpose
with a trailer line `Not-Propagated: <path>`.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable

from ..stages import REPO_ROOT, STAGES

FOLDERS = [s.folder for s in STAGES]


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO_ROOT, check=True, capture_output=True, text=True).stdout


def content(rev: str | None, path: str) -> bytes | None:
    """A file's bytes at a commit, or in the work tree when rev is None; None where it does not exist."""
    if rev is None:
        file = REPO_ROOT / path
        return file.read_bytes() if file.is_file() else None
    result = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=REPO_ROOT, capture_output=True)
    return result.stdout if result.returncode == 0 else None


class ObjectIds:
    """A file's object id at a commit (None where it does not exist), asked of one `git cat-file` process.

    Equal ids are equal contents; one process for the whole history keeps the check's time flat as
    commits accumulate (one `git show` per file and commit grew with every commit).
    """

    def __init__(self) -> None:
        self.process = subprocess.Popen(["git", "cat-file", "--batch-check=%(objectname)"], cwd=REPO_ROOT,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def __call__(self, rev: str | None, path: str) -> str | None:
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(f"{rev}:{path}\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline().strip()
        return None if answer.endswith(" missing") else answer

    def close(self) -> None:
        assert self.process.stdin
        self.process.stdin.close()
        self.process.wait()


def split(path: str) -> tuple[int, str] | None:
    folder, _, rest = path.partition("/")
    if folder in FOLDERS and rest and rest != "CHANGES.diff":
        return FOLDERS.index(folder), rest
    return None


def left_behind(base: str, head: str | None, changed: list[str],
                read: Callable[[str | None, str], object] = content) -> list[tuple[str, str]]:
    """(changed path, later path) pairs where the later copy matched before the change and not after.

    `read(rev, path)` is what is compared: the bytes, or (between two commits) the object ids.
    """
    pairs = []
    for path in changed:
        parsed = split(path)
        if not parsed:
            continue
        index, rest = parsed
        old, new = read(base, path), read(head, path)
        if old is None or new is None or old == new:
            continue
        for folder in FOLDERS[index + 1:]:
            later = f"{folder}/{rest}"
            if read(base, later) == old and read(head, later) != new:
                pairs.append((path, later))
    return pairs


def commits(since: str | None) -> list[tuple[str, list[str], str, list[str]]]:
    """(commit, parents, message, changed paths) for each commit since `since`, oldest first, from one `git log`."""
    log = git("log", "--reverse", "--no-renames", "--name-only", "--format=%x1e%H %P%n%B%x1f",
              f"{since}..HEAD" if since else "HEAD")
    found = []
    for entry in log.split("\x1e")[1:]:
        header_and_body, _, names = entry.partition("\x1f")
        header, _, body = header_and_body.partition("\n")
        rev, *parents = header.split()
        found.append((rev, parents, body, names.split()))
    return found


def check(since: str | None) -> int:
    history = commits(since)
    ids = ObjectIds()
    problems = []
    try:
        for rev, parents, message, changed in history:
            if len(parents) != 1:
                continue
            exempt = {line.split(":", 1)[1].strip() for line in message.splitlines()
                      if line.startswith("Not-Propagated:")}
            for path, later in left_behind(parents[0], rev, changed, read=ids):
                if later not in exempt:
                    problems.append(f"{rev[:10]} changed {path} but not its identical copy {later}")
    finally:
        ids.close()
    for problem in problems:
        print(problem)
    print(f"propagation check: {len(history)} commits, {len(problems)} problem(s)")
    return 1 if problems else 0


def apply() -> int:
    changed = git("diff", "--name-only", "HEAD").split()
    carried = 0
    for path, later in left_behind("HEAD", None, changed):
        (REPO_ROOT / later).write_bytes(content(None, path) or b"")
        print(f"carried {path} -> {later}")
        carried += 1
    print(f"propagate: {carried} file(s) carried forward")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m common.tools.propagate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--since", help="with --check: only commits after this revision")
    args = parser.parse_args(argv)
    return check(args.since) if args.check else apply()


if __name__ == "__main__":
    sys.exit(main())
