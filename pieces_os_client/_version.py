"""The package version: the one place it is written (pyproject.toml reads it from here).

The line stays below every release of the official SDK on the package index (which shares the
import name ``pieces_os_client`` and has released 1.2.2 to 5.0.1), so pip never takes this
package for the official one: a requirement such as ``pieces_os_client>=1`` is reported as
unmet instead of silently satisfied. See README.md, "Install".
"""

__version__ = "0.1.0"
