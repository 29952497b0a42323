"""Two threads that do conflicting things at the same instant, each with its own connection: how
the tests show that row locks order them."""

import threading

from django.db import connection

from core.errors import ApiError


class Racer(threading.Thread):
    """Runs `action(item)` for each race as soon as both racers reach it, with its own connection."""

    def __init__(self, items, barrier, action):
        super().__init__()
        self.items, self.barrier, self.action = items, barrier, action
        self.outcomes, self.errors = [], []

    def run(self):
        try:
            for item in self.items:
                self.barrier.wait()
                try:
                    self.action(item)
                    self.outcomes.append("ok")
                except ApiError as refusal:
                    self.outcomes.append(refusal.code)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertions of the test
            self.errors.append(exc)
            self.barrier.abort()
        finally:
            connection.close()
