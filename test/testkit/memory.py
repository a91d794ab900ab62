"""A child process's own peak memory, for tests that bound it.

``OWN_PEAK_MIB`` is source text that a test pastes into the script it runs with ``python -c``:
it defines ``own_peak_mib()``, the peak resident size of that program alone (``VmHWM`` in
``/proc/self/status``). ``exec`` starts the new program's address space, and with it that
mark, afresh. ``ru_maxrss`` is no measure here: on Linux it carries the parent's peak over
fork and exec, so a child of a pytest process that once held 900 MB reports 900 MB before it
has done anything.
"""

from __future__ import annotations

import sys

import pytest

OWN_PEAK_MIB = '''
def own_peak_mib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("/proc/self/status has no VmHWM line")
'''

#: for the tests that measure it: the mark exists on Linux only
needs_vmhwm = pytest.mark.skipif(sys.platform != "linux", reason="VmHWM (/proc/self/status) is Linux only")
