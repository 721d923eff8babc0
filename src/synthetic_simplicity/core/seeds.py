"""Seeds derived from names, never from loop position (DESIGN.md §4)."""

import hashlib


def derive_seed(base_seed: int, *names: object) -> int:
    """A 63-bit seed from the base seed and a path of names, e.g. ("mnist", "split").

    Adding a stage or reordering a loop never changes the seed of an existing stage.
    """
    key = "/".join([str(int(base_seed)), *map(str, names)])
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") >> 1
