"""Run a command, then print its wall time, rows/s and peak RSS (of it and its children).

Usage: python bench/_measure.py LABEL ROWS -- COMMAND...
Prints one line: LABEL: <s> s, <rows/s> rows/s, peak RSS <MB> MB, exit <code>.
"""

import resource
import subprocess
import sys
import time


def main() -> int:
    label, rows, sep, *command = sys.argv[1:]
    assert sep == "--", __doc__
    rows = int(rows)
    started = time.monotonic()
    code = subprocess.call(command)
    elapsed = time.monotonic() - started
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    rate = f"{rows / elapsed:,.0f} rows/s" if rows else "-"
    print(
        f"BENCH {label}: {elapsed:,.1f} s, {rate}, peak RSS {peak_kb / 1024:,.0f} MB, exit {code}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
