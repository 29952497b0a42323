"""The Redis cache backend: one client object per connection pool, and a cache that degrades to misses.

Django's RedisCacheClient builds a new `redis.Redis` object around its pool for every cache call;
with redis-py 5 and later that costs more than the round trip (about 0.4 ms a call on the feed's
hot path). A client only wraps the pool and is safe to share between threads; the pool itself
reconnects in a forked child, as before.

The cache only saves work, so an unreachable or slow Redis must not fail a request. Each call is
bounded by the pool's socket timeouts (settings: CACHE_TIMEOUT_MS) and goes through a circuit
breaker (core.breaker, BREAKER_RESET_S) shared by the process's threads. When a call fails, or the
breaker is open, the cache answers as if the key were absent:
    get -> default, get_many -> {}, has_key / add / touch / delete / clear -> False,
    set / set_many / delete_many -> nothing stored,
    incr / decr -> ValueError, as Django raises for an absent key.
`add` answering False means "not stored", so a lock taken with `cache.add` is not taken while the
cache is down: the caller skips the guarded work rather than doing it twice.
"""

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient as DjangoRedisCacheClient

from core.breaker import UNAVAILABLE_ERRORS, breaker_for, describe_url

_MISSING = object()


class RedisCacheClient(DjangoRedisCacheClient):
    def __init__(self, servers, *, breaker_reset_s: float = 5.0, **options):
        super().__init__(servers, **options)
        self._clients = {}
        name = "cache at " + ", ".join(describe_url(server) for server in servers)
        self._breaker = breaker_for(name, reset_after_s=breaker_reset_s)

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client

    def _guarded(self, call, fallback):
        if not self._breaker.allow():
            return fallback
        try:
            result = call()
        except UNAVAILABLE_ERRORS as exc:
            self._breaker.record_failure(exc)
            return fallback
        self._breaker.record_success()
        return result

    def add(self, key, value, timeout):
        return self._guarded(lambda: super(RedisCacheClient, self).add(key, value, timeout), False)

    def get(self, key, default):
        return self._guarded(lambda: super(RedisCacheClient, self).get(key, default), default)

    def set(self, key, value, timeout):
        self._guarded(lambda: super(RedisCacheClient, self).set(key, value, timeout), None)

    def touch(self, key, timeout):
        return self._guarded(lambda: super(RedisCacheClient, self).touch(key, timeout), False)

    def delete(self, key):
        return self._guarded(lambda: super(RedisCacheClient, self).delete(key), False)

    def get_many(self, keys):
        return self._guarded(lambda: super(RedisCacheClient, self).get_many(keys), {})

    def has_key(self, key):
        return self._guarded(lambda: super(RedisCacheClient, self).has_key(key), False)

    def incr(self, key, delta):
        result = self._guarded(lambda: super(RedisCacheClient, self).incr(key, delta), _MISSING)
        if result is _MISSING:
            raise ValueError(f"Key '{key}' not found (the cache is unavailable).")
        return result

    def set_many(self, data, timeout):
        self._guarded(lambda: super(RedisCacheClient, self).set_many(data, timeout), None)

    def delete_many(self, keys):
        self._guarded(lambda: super(RedisCacheClient, self).delete_many(keys), None)

    def clear(self):
        # ASYNC empties the database at once and frees the memory in the background: a large cache
        # is cleared well within the call's timeout.
        return self._guarded(lambda: bool(self.get_client(write=True).flushdb(asynchronous=True)), False)


class RedisCache(DjangoRedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = RedisCacheClient

    def ping(self, *, timeout_s: float) -> None:
        """Asks the (first) server on a connection of its own, past the breaker and with a longer
        timeout than cache calls have: a health check wants the dependency's state, not the cache's
        fallback. Raises when the server does not answer."""
        pool = self._cache._get_connection_pool(True)
        kwargs = {**pool.connection_kwargs, "socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
        connection = pool.connection_class(**kwargs)
        try:
            connection.send_command("PING")
            connection.read_response()
        finally:
            connection.disconnect()
