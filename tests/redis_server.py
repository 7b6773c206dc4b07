"""Tests start their own real redis-server on a free port (see server/redis_process.py)."""
from server.redis_process import RedisProcess, free_port, start_redis

__all__ = ["RedisProcess", "free_port", "start_redis"]
