"""The redis_server fixture of tests/redis_support.py, for every test here."""

from redis_support import FAST, REDIS_SERVER, RedisServer, free_port, redis_server

__all__ = ["FAST", "REDIS_SERVER", "RedisServer", "free_port", "redis_server"]
