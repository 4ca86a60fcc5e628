"""The master key: from configuration, or generated once and kept in the data directory."""

from __future__ import annotations

from pathlib import Path

from sluice.identity.keys import KEY_PREFIX, generate_key
from sluice.store.private import write_private

MASTER_KEY_FILE = "master_key"


def load_or_create_master_key(data_dir: Path) -> tuple[str, bool]:
    """Return (key, created): the stored key, or a new one written with owner-only permissions."""
    path = data_dir / MASTER_KEY_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip(), False
    key = KEY_PREFIX + "master-" + generate_key()[len(KEY_PREFIX) :]
    write_private(path, key + "\n")
    return key, True
