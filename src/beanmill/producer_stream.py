"""The producer's batches of items(), from its cursor on: an exception while iterating is the
user's, and a stream (no len()) read again must give the items it gave before the cursor."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from beanmill.cursor import Cursor
from beanmill.errors import BeanmillError, CursorError, UserCodeError
from beanmill.identity import StreamDigest, population_of
from beanmill.ids import Layout
from beanmill.jobspec import Spec
from beanmill.jsontypes import Item
from beanmill.putahead import Group
from beanmill.source import batches
from beanmill.usercode import user_frame


class ItemBatches:
    """items() cut into the layout's batches; a stream's digest kept up to the batches put."""

    def __init__(self, spec: Spec, layout: Layout, state: Path) -> None:
        self.spec, self.layout, self.state = spec, layout, state
        self.stream: StreamDigest | None = None

    def from_cursor(
        self, items: Iterable[Item], cursor: Cursor
    ) -> Iterator[tuple[int, list[Item]]]:
        """A stream (no len()) is read again from its start, and the items before the cursor
        must digest as they did when they were put: else items() changed under the job."""
        if population_of(items) is not None:
            self.stream = None
            yield from self.user_batches(items, cursor.next_batch)
            return
        self.stream = StreamDigest()
        for seq, chunk in self.user_batches(items, 0):
            if seq == cursor.next_batch:
                self._check_stream(cursor)
            if seq >= cursor.next_batch:
                yield seq, chunk  # the caller digests it once it is put
            else:
                self.stream.update(chunk)
        if cursor.next_batch > 0 and not cursor.finished:
            self._check_stream(cursor)  # it ended before the cursor: it shrank

    def was_put(self, group: Group) -> None:
        """The group is on the queue: a stream's digest now covers its items."""
        if self.stream is not None:
            self.stream.update([item for _, chunk in group for item in chunk])

    def digest(self, cursor: Cursor) -> str | None:
        """The stream digest for a cursor at the batches put so far."""
        return self.stream.hexdigest() if self.stream is not None else cursor.stream_digest

    def _check_stream(self, cursor: Cursor) -> None:
        assert self.stream is not None
        if cursor.stream_digest is not None and self.stream.hexdigest() != cursor.stream_digest:
            raise CursorError(
                f"items() gives other items than when this job started (its first "
                f"{cursor.items_put:,} differ; cursor {self.state}): the total would match "
                f"neither; run it under a new job name, or `beanmill reset --job "
                f"{self.spec.name}` to start it over"
            )

    def user_batches(self, items: Iterable[Item], start: int) -> Iterator[tuple[int, list[Item]]]:
        """batches(), where an exception raised while iterating items() is the user's."""
        stream = batches(items, self.layout, start)
        while True:
            try:
                yield next(stream)
            except StopIteration:
                return
            except BeanmillError:
                raise
            except Exception as exc:
                raise UserCodeError(
                    f"items() of {self.spec.ref} raised while iterating: {user_frame(exc)}"
                ) from None
