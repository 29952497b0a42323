import contextlib

import pytest
import redis
from kombu import Connection, Exchange, Queue
from kombu.transport import redis as kombu_redis

from core.broker_transport import Transport


@contextlib.contextmanager
def worker_holding_a_message_it_failed_to_acknowledge(redis_process, transport, visibility_s=3600):
    """A consumer as our workers run (late acknowledgement, a prefetch of one) that took the first
    of two messages and acknowledged it while Redis did not answer."""
    queue = Queue("jobs", Exchange("jobs"), routing_key="jobs")
    options = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5, "visibility_timeout": visibility_s}
    with Connection(redis_process.url, transport=transport, transport_options=options) as connection:
        producer = connection.Producer()
        for body in (b"first", b"second"):
            producer.publish(body, exchange=queue.exchange, routing_key="jobs", declare=[queue])
        received = []
        channel = connection.channel()
        channel.basic_qos(0, 1, False)
        with connection.Consumer(
            queue, channel=channel, callbacks=[lambda body, message: received.append(message)]
        ):
            connection.drain_events(timeout=2)
            assert [message.body for message in received] == [b"first"]
            redis_process.pause()
            try:
                with pytest.raises((redis.exceptions.TimeoutError, redis.exceptions.ConnectionError)):
                    received[0].ack()
            finally:
                redis_process.resume()
            yield connection, channel, received


def test_a_worker_whose_acknowledgement_failed_goes_on_taking_messages(redis_process):
    with worker_holding_a_message_it_failed_to_acknowledge(redis_process, Transport) as (
        connection,
        channel,
        received,
    ):
        assert channel.qos.can_consume()
        connection.drain_events(timeout=2)
        assert [message.body for message in received] == [b"first", b"second"]


def test_kombus_own_transport_stops_taking_messages_after_a_failed_acknowledgement(redis_process):
    # What core.broker_transport exists for: should kombu fix this, that module can go.
    with worker_holding_a_message_it_failed_to_acknowledge(redis_process, kombu_redis.Transport) as (
        _connection,
        channel,
        _received,
    ):
        assert not channel.qos.can_consume()
