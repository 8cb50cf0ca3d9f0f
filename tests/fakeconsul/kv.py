"""Consul's KV table: entries, tombstones and the indexes reads report (``agent/consul/state/kvs.go``).

Not thread-safe and clock-free: :class:`~tests.fakeconsul.state.FakeConsulState` serialises access, checks sessions
and lock-delays, and hands every write the raft index it commits at.
"""

from __future__ import annotations

import base64
import dataclasses
from dataclasses import dataclass


@dataclass
class KVEntry:
    """One ``DirEntry``. An empty value is kept as ``None``: Consul stores ``[]byte(nil)`` and answers ``null``."""

    key: str
    value: bytes | None = None
    flags: int = 0
    lock_index: int = 0
    session: str = ""
    create_index: int = 0
    modify_index: int = 0

    def __post_init__(self) -> None:
        if not self.value:
            self.value = None

    def same_content(self, other: KVEntry) -> bool:
        # DirEntry.Equal: everything but the raft indexes.
        return (self.key, self.value, self.flags, self.lock_index, self.session) == (
            other.key,
            other.value,
            other.flags,
            other.lock_index,
            other.session,
        )

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "LockIndex": self.lock_index,
            "Key": self.key,
            "Flags": self.flags,
            "Value": base64.b64encode(self.value).decode("ascii") if self.value else None,
        }
        if self.session:  # `json:",omitempty"`
            out["Session"] = self.session
        out["CreateIndex"] = self.create_index
        out["ModifyIndex"] = self.modify_index
        return out


class KVStore:
    def __init__(self) -> None:
        self._entries: dict[str, KVEntry] = {}
        # Consul's graveyard: a deleted key (or a deleted tree's prefix) -> the index it was deleted at, so that a
        # prefix's index never slides backwards when its newest key goes away. Consul reaps these after its
        # tombstone TTL; a test agent never lives that long, so they are kept.
        self._tombstones: dict[str, int] = {}
        # The max index of Consul's "kvs" and "tombstones" tables.
        self.table_index = 0

    # -- reads ---------------------------------------------------------------------------------------------------

    def get(self, key: str) -> tuple[int, KVEntry | None]:
        """KVS.Get: the entry's ModifyIndex, or for a missing key the whole table's index (never below 1)."""
        entry = self._entries.get(key)
        if entry is not None:
            return entry.modify_index, dataclasses.replace(entry)
        return max(self.table_index, 1), None

    def list_prefix(self, prefix: str) -> tuple[int, list[KVEntry]]:
        """KVS.List: entries under ``prefix`` (sorted) and the newest index among them and the prefix's tombstones."""
        entries = [dataclasses.replace(e) for k, e in sorted(self._entries.items()) if k.startswith(prefix)]
        if prefix:
            stones = [index for key, index in self._tombstones.items() if key.startswith(prefix)]
            sub_index = max([e.modify_index for e in entries] + stones, default=0)
        else:
            sub_index = self.table_index
        return max(sub_index or self.table_index, 1), entries

    def keys(self, prefix: str, separator: str) -> tuple[int, list[str]]:
        """KVS.ListKeys: key names under ``prefix``, each folded at the first ``separator`` after the prefix."""
        index, entries = self.list_prefix(prefix)
        keys: list[str] = []
        seen: set[str] = set()
        for entry in entries:
            cut = entry.key.find(separator, len(prefix)) if separator else -1
            if cut < 0:
                keys.append(entry.key)
            else:
                folded = entry.key[: cut + len(separator)]
                if folded not in seen:
                    seen.add(folded)
                    keys.append(folded)
        return index, keys

    def exists(self, key: str) -> bool:
        return key in self._entries

    def held_by(self, session_id: str) -> list[str]:
        return sorted(k for k, e in self._entries.items() if e.session == session_id)

    # -- writes (each at the raft index ``idx``) ---------------------------------------------------------------------

    def _write(self, idx: int, entry: KVEntry) -> None:
        # kvsSetTxn: CreateIndex survives updates, and a write that changes nothing is skipped entirely, so neither
        # the entry's ModifyIndex nor the table index moves (and blocking queries are not woken).
        existing = self._entries.get(entry.key)
        entry.create_index = existing.create_index if existing else idx
        if existing is not None and existing.same_content(entry):
            return
        entry.modify_index = idx
        self._entries[entry.key] = entry
        self.table_index = idx

    def set(self, idx: int, key: str, value: bytes | None, flags: int) -> None:
        """A plain PUT: keeps the holder's Session but, like Consul, not the LockIndex (the request carries 0)."""
        existing = self._entries.get(key)
        self._write(idx, KVEntry(key, value, flags, session=existing.session if existing else ""))

    def cas(self, idx: int, key: str, value: bytes | None, flags: int, cas_index: int) -> bool:
        """``?cas=N``: 0 means create-only; otherwise only if the key's ModifyIndex is N."""
        existing = self._entries.get(key)
        if cas_index == 0 and existing is not None:
            return False
        if cas_index != 0 and (existing is None or existing.modify_index != cas_index):
            return False
        self.set(idx, key, value, flags)
        return True

    def lock(self, idx: int, key: str, value: bytes | None, flags: int, session_id: str) -> bool:
        """``?acquire=``: the caller has checked the session exists and no lock-delay applies (kvsLockTxn)."""
        existing = self._entries.get(key)
        if existing is None:
            lock_index = 1
        elif existing.session == session_id:
            lock_index = existing.lock_index  # re-acquiring a held lock is not a new acquisition
        elif existing.session:
            return False
        else:
            lock_index = existing.lock_index + 1
        self._write(idx, KVEntry(key, value, flags, lock_index=lock_index, session=session_id))
        return True

    def unlock(self, idx: int, key: str, value: bytes | None, flags: int, session_id: str) -> bool:
        """``?release=``: only the holder may release; the request's value replaces the stored one (kvsUnlockTxn)."""
        existing = self._entries.get(key)
        if existing is None or existing.session != session_id:
            return False
        self._write(idx, KVEntry(key, value, flags, lock_index=existing.lock_index))
        return True

    def release(self, idx: int, key: str) -> None:
        """Session invalidation with behavior "release": the holder is cleared, value and LockIndex stay."""
        existing = self._entries[key]
        self._write(idx, dataclasses.replace(existing, session=""))

    def delete(self, idx: int, key: str) -> None:
        if self._entries.pop(key, None) is not None:
            self._tombstones[key] = idx
            self.table_index = idx

    def delete_cas(self, idx: int, key: str, cas_index: int) -> bool:
        """``DELETE ?cas=N``. Consul (kvsDeleteCASTxn) reports success for a key that does not exist."""
        existing = self._entries.get(key)
        if existing is None:
            return True
        if existing.modify_index != cas_index:
            return False
        self.delete(idx, key)
        return True

    def delete_tree(self, idx: int, prefix: str) -> None:
        """``DELETE ?recurse``: one tombstone for the prefix (none when the whole store is emptied)."""
        doomed = [key for key in self._entries if key.startswith(prefix)]
        if not doomed:
            return
        for key in doomed:
            del self._entries[key]
        if prefix:
            self._tombstones[prefix] = idx
        self.table_index = idx
