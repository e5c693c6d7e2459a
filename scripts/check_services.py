"""Exit 0 when PostgreSQL and Redis answer; otherwise print why and exit 1."""

import socket
import sys
from urllib.parse import urlparse


def check(name: str, url: str) -> str | None:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port), timeout=3):
            pass
    except OSError as exc:
        return f"{name} at {parsed.hostname}:{parsed.port} is unreachable ({exc})"
    if name == "PostgreSQL":
        import psycopg

        try:
            psycopg.connect(url.replace(parsed.path, "/postgres"), connect_timeout=3).close()
        except psycopg.Error as exc:
            return f"PostgreSQL at {parsed.hostname}:{parsed.port} refused a connection ({exc})"
    if name == "Redis":
        import redis

        try:
            redis.Redis.from_url(url, socket_timeout=3).ping()
        except redis.RedisError as exc:
            return f"Redis at {parsed.hostname}:{parsed.port} did not answer PING ({exc})"
    return None


problems = [p for p in (check("PostgreSQL", sys.argv[1]), check("Redis", sys.argv[2])) if p]
for problem in problems:
    print(problem)
sys.exit(1 if problems else 0)
