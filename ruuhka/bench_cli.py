"""``ruuhka-bench NAME [ARGS]``: run a benchmark or evaluation from ``bench/``.

The benchmarks live in the source checkout (they are not part of the installed
package), so this command finds ``bench/`` next to the package and runs the
script as if it were called directly: ``ruuhka-bench privacy --dataset DIR`` is
``python bench/privacy_eval.py --dataset DIR``.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent.parent / "bench"
SCRIPTS = {
    "privacy": "privacy_eval.py",
    "anonymise": "anonymise.py",
    "long-scene": "long_scene.py",
    "ingest": "ingest.py",
    "ingest-replicas": "ingest_replicas.py",
    "late-data": "late_data.py",
    "edge-footprint": "edge_footprint.py",
    "fanout": "fanout.py",
    "soak": "soak.py",
    "forecast": "forecast_eval.py",
    "fit-profiles": "fit_profiles.py",
    "pages": "pages.py",
    "lighthouse": "lighthouse.py",
    "attack": "attack.py",
}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in SCRIPTS:
        names = ", ".join(SCRIPTS)
        print(f"usage: ruuhka-bench NAME [ARGS...]; NAME is one of: {names}", file=sys.stderr)
        return 2
    script = BENCH_DIR / SCRIPTS[args[0]]
    if not script.is_file():
        print(f"ruuhka-bench: {script} not found; run from a source checkout", file=sys.stderr)
        return 2
    sys.argv = [str(script), *args[1:]]
    # As `python bench/X.py` would: the script's folder first (benches import each
    # other), and the checkout for the project's own packages.
    sys.path[:0] = [str(BENCH_DIR), str(BENCH_DIR.parent)]
    runpy.run_path(str(script), run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
