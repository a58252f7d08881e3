"""Lighthouse scores of the public pages at city scale, on a phone.

A hub with the made-up city of bench/cityhub.py (150 facilities and a camera
place); npm's Lighthouse 12 (pinned in bench/node; 13 needs Node 22) drives
Debian's Chromium with its default mobile profile (a mid-range phone, simulated
slow 4G and a 4x slower CPU) over the list, a facility page and /about. Each page
is run ``--runs`` times and judged by the median of each category; the goal is
at least ``--min-score`` (95) in performance, accessibility, best practices and
SEO, and the process exits 1 when a page misses it. The audits that lost points
are listed under each page.

    make bench/node/node_modules/lighthouse/cli/index.js    # once: npm ci in bench/node
    ruuhka-bench lighthouse [--facilities 150] [--runs 3] [--min-score 95]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from cityhub import CAMERA_FACILITY, city_hub  # bench/, next to this file

LIGHTHOUSE = (
    Path(__file__).resolve().parent / "node" / "node_modules" / "lighthouse" / "cli" / "index.js"
)
CHROMIUM = "/usr/bin/chromium"
CATEGORIES = ("performance", "accessibility", "best-practices", "seo")
CHROME_FLAGS = "--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage"


def lighthouse(url: str, out: Path) -> dict:
    """One Lighthouse run's report (its JSON), mobile profile."""
    command = [
        shutil.which("node") or "node", str(LIGHTHOUSE), url,
        "--output=json", f"--output-path={out}", "--quiet",
        f"--chrome-path={CHROMIUM}", f"--chrome-flags={CHROME_FLAGS}",
        f"--only-categories={','.join(CATEGORIES)}",
    ]  # fmt: skip
    subprocess.run(command, check=True, timeout=300)
    return json.loads(out.read_text(encoding="utf-8"))


def lost_points(report: dict) -> dict[str, str]:
    """ "category: audit title" → its value, for every weighted audit that was not perfect."""
    lost = {}
    for name in CATEGORIES:
        for ref in report["categories"][name]["auditRefs"]:
            audit = report["audits"][ref["id"]]
            if ref["weight"] > 0 and audit["score"] is not None and audit["score"] < 1:
                lost[f"{name}: {audit['title']}"] = audit.get("displayValue") or (
                    f"score {audit['score']:.2f}"
                )
    return lost


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--facilities", type=int, default=150)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--min-score", type=float, default=95)
    args = parser.parse_args()
    if not LIGHTHOUSE.exists():
        print(f"{LIGHTHOUSE} is missing: run `npm ci --prefix bench/node`", file=sys.stderr)
        return 2
    met = True
    with city_hub(args.facilities) as (hub, places), tempfile.TemporaryDirectory() as tmp:
        pages = (
            ("list", "/?lang=fi"),
            ("facility", f"/facilities/{places[0].id}?lang=fi&day=sat"),
            ("camera place", f"/facilities/{CAMERA_FACILITY}?lang=fi"),
            ("about", "/about?lang=fi"),
        )
        print(f"{len(places)} facilities; Lighthouse mobile, median of {args.runs} runs; "
              f"goal >= {args.min_score:g} in each category")  # fmt: skip
        print(f"{'page':14s} " + " ".join(f"{c:>14s}" for c in CATEGORIES))
        for name, path in pages:
            scores: dict[str, list[float]] = {c: [] for c in CATEGORIES}
            lost: dict[str, list[str]] = {}
            for run in range(args.runs):
                report = lighthouse(hub.url + path, Path(tmp) / f"{name}-{run}.json")
                if report.get("runtimeError"):
                    raise RuntimeError(f"{path}: {report['runtimeError']}")
                for category in CATEGORIES:
                    scores[category].append(100 * report["categories"][category]["score"])
                for audit, value in lost_points(report).items():
                    lost.setdefault(audit, []).append(value)
            medians = {c: statistics.median(v) for c, v in scores.items()}
            ok = all(score >= args.min_score for score in medians.values())
            met &= ok
            print(f"{name:14s} " + " ".join(f"{medians[c]:14.0f}" for c in CATEGORIES)
                  + ("" if ok else "   BELOW GOAL"))  # fmt: skip
            for audit, values in sorted(lost.items()):
                print(f"    {audit} ({', '.join(values)}; in {len(values)} of {args.runs} runs)")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
