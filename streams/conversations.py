"""Turns: one send at a time per conversation (run and notification), in the order they were started.

The dispatcher sends every delivery as its own task, so two states of one run (``running`` and
``completed``, read in one fetch) would otherwise be sent at once, and both would start a conversation.
A delivery of a conversing kind (runherald.conversation) takes its conversation's turn before it reads
the conversation from the ledger, and gives it back once its outcome (with the conversation it started
or changed) is recorded: so the next state reads the parent's ``ts`` from the ledger. That next state
is sent only once the record holding the conversation is on the status topic (the dispatcher waits for
it after reading it), so a worker killed in between leaves a ledger without the ``ts`` and without any
update aimed at it: the next owner posts a parent again (a duplicate at worst, never an update aimed
at a message the ledger does not hold).

Turns are FIFO (asyncio.Lock wakes its waiters in order) and tasks reach them in the order they were
created, which is the order the deliveries were read from their partition.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from runherald import conversation
from runherald.delivery import Delivery, run_key


class Turns:
    """A lock per conversation under way, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def turn(self, delivery: Delivery, slots: asyncio.Semaphore | None = None) -> AsyncIterator[None]:
        """Hold the delivery's conversation for one attempt (no turn for kinds that do not converse).

        A send that must wait for its turn gives its slot (of `slots`, which it holds) back meanwhile:
        the one whose turn it is may need a slot again after a rate limit's wait.
        """
        if not conversation.converses(delivery.kind):
            yield
            return
        key = (run_key(delivery.project, delivery.uid), delivery.name)
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            if lock.locked() and slots is not None:
                slots.release()
                try:
                    await lock.acquire()
                finally:
                    await slots.acquire()
            else:
                await lock.acquire()
            try:
                yield
            finally:
                lock.release()
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


__all__ = ["Turns"]
