"""A process's own peak resident memory, for the benchmarks' contender processes.

``getrusage(RUSAGE_SELF).ru_maxrss`` is not the process's own on Linux: a child started with
``fork`` + ``exec`` starts from its parent's high-water mark (the kernel carries it over to the
new image), so a contender spawned by a benchmark that has just generated 1.5 GB of data would
report 1.5 GB whatever it used. ``VmHWM`` in ``/proc/self/status`` is the peak of the current
image only; ``ru_maxrss`` remains the answer where ``/proc`` is not available.
"""

from __future__ import annotations

import resource
import sys

__all__ = ["peak_rss_bytes"]


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (this program image only), in bytes."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere
