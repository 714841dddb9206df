"""ferry's local AWS: moto's server plus the behaviour patches ferry's tests need.

Run with ``python -m ferry_emulator --port 0``; see local/emulator/README.md.
"""

__version__ = "0.1.0"
