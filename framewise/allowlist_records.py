"""The allowlist topic read into memory: identity id -> :class:`AllowlistRecord`.

Identities live on the compacted topic ``framewise.allowlist.v1`` (key: identity id; a null
value removes one). Every face worker and every API replica follows the whole topic with a
:class:`~framewise.topic_view.TopicView` whose callback is :meth:`AllowlistRecords.on_record`.
"""

from __future__ import annotations

import logging
import threading

from framewise.journal import Journal
from schemas.messages import AllowlistRecord

log = logging.getLogger(__name__)


class AllowlistRecords:
    """Thread-safe: the topic follower writes, request handlers and analyzer threads read."""

    def __init__(self, journal: Journal | None = None) -> None:
        self.journal = journal  # keeps every record durable (embedded broker)
        self._lock = threading.Lock()
        self._records: dict[str, AllowlistRecord] = {}

    def apply(self, identity_id: str, record: AllowlistRecord | None) -> None:
        with self._lock:
            if record is None:
                self._records.pop(identity_id, None)
            else:
                self._records[identity_id] = record
            self.changed(list(self._records.values()))

    def changed(self, records: list[AllowlistRecord]) -> None:
        """Called under the lock after every change; subclasses derive their indexes here."""

    def on_record(self, identity_id: str, value: bytes | None, headers: dict[str, bytes]) -> None:
        if self.journal is not None:
            self.journal.keep_identity(identity_id, value)
        if value is None:
            self.apply(identity_id, None)
            return
        try:
            self.apply(identity_id, AllowlistRecord.model_validate_json(value))
        except ValueError:
            log.warning("allowlist record %s does not parse; ignored", identity_id)

    def records(self) -> list[AllowlistRecord]:
        with self._lock:
            return list(self._records.values())

    def get(self, identity_id: str) -> AllowlistRecord | None:
        with self._lock:
            return self._records.get(identity_id)
