"""Sluice's own benchmark: direct, a minimal pass-through floor and Sluice variants, measured in one run.

Run it with ``python -m bench`` (see ``bench/README.md``).
"""
