"""``make lint``'s dependency audit: ``pip-audit`` on the hashed runtime lock (what the image ships),
offline-safe.

pip-audit asks PyPI's vulnerability data (the JSON API of each release) about every locked release.
Where that advisory service cannot be reached (an offline build machine, a PyPI mirror without the
per-release JSON), the audit is skipped with a message and exit status 0 instead of failing the lint —
and never reported as a clean audit; everything else — a known vulnerability above all — fails it.

    python tools/audit.py [-r requirements/runtime.txt]

``EDA_AUDIT_PROBE_URL`` overrides the address probed first (default: one release's JSON on PyPI).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

PROBE_URL = "https://pypi.org/pypi/pip/24.0/json"  # the endpoint pip-audit reads, for one release
LOCK = Path(__file__).resolve().parents[1] / "requirements" / "runtime.txt"
# What pip-audit prints when the service fails in the middle of a run (not a finding).
NETWORK_ERRORS = ("ConnectionError", "Max retries exceeded", "NameResolutionError", "ReadTimeout")


def reachable(url: str, timeout: float = 5.0) -> str | None:
    """``None`` when ``url`` answers; else why not."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            response.read(1)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        return str(getattr(exc, "reason", exc))
    return None


def audit(lock: Path) -> int:
    probe = os.environ.get("EDA_AUDIT_PROBE_URL", PROBE_URL)
    why = reachable(probe)
    if why is not None:
        print(f"pip-audit skipped: the advisory database ({probe}) cannot be reached: {why}")
        return 0
    pip_audit = Path(sys.executable).with_name("pip-audit")
    command = [str(pip_audit), "--requirement", str(lock), "--require-hashes", "--disable-pip"]
    done = subprocess.run(
        [*command, "--progress-spinner", "off"], capture_output=True, text=True, check=False
    )
    output = done.stdout + done.stderr
    if (
        done.returncode != 0
        and "known vulnerabilit" not in output
        and any(e in output for e in NETWORK_ERRORS)
    ):
        print(f"pip-audit skipped: the advisory database failed during the run:\n{output.strip()[-800:]}")
        return 0
    unaudited = output.count("could not be audited")
    if done.returncode == 0 and unaudited and unaudited >= _pins(lock):
        print(f"pip-audit skipped: the advisory database answered for none of the {unaudited} releases")
        return 0
    print(output.strip())
    return done.returncode


def _pins(lock: Path) -> int:
    """The releases of ``lock`` that apply here (a pin's environment marker holds)."""
    from packaging.requirements import Requirement

    count = 0
    for line in lock.read_text().splitlines():
        if line[:1].isalnum() and "==" in line:
            requirement = Requirement(line.split(" --")[0].rstrip(" \\"))
            count += requirement.marker is None or requirement.marker.evaluate()
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-r", "--requirement", type=Path, default=LOCK, help="hashed lock file to audit")
    sys.exit(audit(parser.parse_args().requirement))


if __name__ == "__main__":
    main()
