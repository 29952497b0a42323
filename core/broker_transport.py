"""The Redis broker transport, with an acknowledgement that never stops a worker.

kombu's Redis QoS removes a message from Redis's unacked index and only then forgets it locally.
When Redis does not answer at that moment (paused, restarted), the first step raises and the
second never runs: the worker keeps counting the message as delivered and unacknowledged, and with
a prefetch of one (late acknowledgement, one task at a time, as our workers run) it never takes
another message while it lives. Here the local record is dropped whatever Redis answered. A
paused Redis still carries out the removal once it resumes; if the removal was lost, the message
is delivered again after the visibility timeout, which our tasks answer with "nothing to do" (they
are idempotent and the job row says it is done).

Used when the broker URL is a Redis one (`CELERY_BROKER_TRANSPORT` in config/settings.py).
"""

from __future__ import annotations

from kombu.transport import redis, virtual


class QoS(redis.QoS):
    def ack(self, delivery_tag) -> None:
        try:
            self._remove_from_indices(delivery_tag).execute()
        finally:
            virtual.QoS.ack(self, delivery_tag)


class Channel(redis.Channel):
    QoS = QoS


class Transport(redis.Transport):
    Channel = Channel
