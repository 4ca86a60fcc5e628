"""Failed-login throttling, so that nobody can guess passwords quickly and nobody can lock someone else out.

Two subjects are counted (in Redis when configured, so replicas share them; in this process otherwise):

- **(account, client address)**: ``attempts`` failures are free; each further one makes that pair wait
  ``delay_seconds``, doubling per failure up to ``max_delay_seconds``. A pair's count is forgotten ``window``
  seconds after its last failure (or after its wait, if longer), and a correct password clears it. Failures from
  one address never delay the same account from another address, so guessing someone's password cannot lock them
  out.
- **client address**: at most ``address_attempts`` failures within ``window`` (any accounts), then that address
  waits out the window: the bound on one client spraying many accounts.

Sign-ups are counted per client address too: at most ``signup_attempts`` within ``signup_window`` (every attempt
counts, accepted or not), so nobody mass-creates accounts or probes for them.

The in-process tables are bounded: past ``max_tracked`` subjects the least recently touched are evicted first,
never all of them at once (an attacker filling the table cannot wipe everyone's counts).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from sluice.config import AuthConfig

log = structlog.get_logger("sluice.throttle")

MAX_TRACKED = 100_000


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    attempts: int = 5  # free failures per (account, address)
    window: float = 300.0  # seconds a count is kept after its last failure
    address_attempts: int = 20  # failures per address (any account) within the window
    delay_seconds: float = 5.0  # the first wait once a pair's free failures are spent ...
    max_delay_seconds: float = 900.0  # ... doubling per failure up to this
    signup_attempts: int = 10  # sign-ups per address ...
    signup_window: float = 3600.0  # ... within this many seconds

    def pair_wait(self, failures: int) -> float:
        """Seconds a pair waits after its ``failures``-th failure (0 while it has free ones left)."""
        if failures < self.attempts:
            return 0.0
        return min(self.max_delay_seconds, self.delay_seconds * 2.0 ** min(failures - self.attempts, 40))

    def pair_lifetime(self, failures: int) -> float:
        return max(self.window, self.pair_wait(failures))


def login_policy(auth: AuthConfig) -> ThrottlePolicy:
    return ThrottlePolicy(
        attempts=auth.login_attempts,
        window=auth.login_window_seconds,
        address_attempts=auth.login_address_attempts,
        delay_seconds=auth.login_delay_seconds,
        max_delay_seconds=max(auth.login_delay_seconds, auth.login_max_delay_seconds),
        signup_attempts=auth.signup_attempts,
        signup_window=auth.signup_window_seconds,
    )


class _Count:
    __slots__ = ("failures", "since", "until")

    def __init__(self, since: float) -> None:
        self.failures = 0
        self.since = since  # when counting began (an address's window starts here)
        self.until = 0.0  # a pair's next attempt is not before this


class _Table:
    """Subject → count, least recently touched first; bounded by evicting from that end."""

    def __init__(self, max_tracked: int) -> None:
        self.max_tracked = max_tracked
        self.counts: OrderedDict[str, tuple[_Count, float]] = OrderedDict()  # subject → (count, forget at)

    def get(self, subject: str, now: float) -> _Count | None:
        found = self.counts.get(subject)
        if found is None:
            return None
        if found[1] <= now:
            del self.counts[subject]
            return None
        return found[0]

    def put(self, subject: str, count: _Count, forget_at: float) -> None:
        self.counts[subject] = (count, forget_at)
        self.counts.move_to_end(subject)
        while len(self.counts) > self.max_tracked:
            self.counts.popitem(last=False)

    def drop(self, subject: str) -> None:
        self.counts.pop(subject, None)


def _pair(account: str, address: str) -> str:
    return f"pair:{account}|{address}"


def _address(address: str) -> str:
    return f"addr:{address}"


def _signup(address: str) -> str:
    return f"signup:{address}"


class LoginThrottle:
    def __init__(
        self,
        policy: ThrottlePolicy,
        redis: Redis | None = None,
        prefix: str = "sluice",
        *,
        max_tracked: int = MAX_TRACKED,
        clock: Callable[[], float] = time.monotonic,
        deadline: float = 0.5,
    ) -> None:
        self.policy = policy
        self.redis = redis
        self.deadline = deadline  # each Redis round trip: a hung Redis falls back to this replica after it
        self.prefix = f"{prefix}:login:"
        self._clock = clock
        self._table = _Table(max_tracked)

    async def blocked(self, account: str, address: str) -> float | None:
        """Seconds until ``account`` may try again from ``address``, if it must wait."""
        if self.redis is not None:
            try:
                async with asyncio.timeout(self.deadline):
                    return await self._blocked_shared(account, address)
            except (RedisError, OSError) as exc:
                log.warning("login throttle falls back to this replica", error=type(exc).__name__)
        now = self._clock()
        waits = []
        pair = self._table.get(_pair(account, address), now)
        if pair is not None and pair.until > now:
            waits.append(pair.until - now)
        per_address = self._table.get(_address(address), now)
        if per_address is not None and per_address.failures >= self.policy.address_attempts:
            waits.append(per_address.since + self.policy.window - now)
        return max(1.0, max(waits)) if waits else None

    async def failed(self, account: str, address: str) -> None:
        if self.redis is not None:
            try:
                async with asyncio.timeout(self.deadline):
                    await self._failed_shared(account, address)
                return
            except (RedisError, OSError) as exc:
                log.warning("login throttle falls back to this replica", error=type(exc).__name__)
        now = self._clock()
        pair_subject = _pair(account, address)
        pair = self._table.get(pair_subject, now) or _Count(now)
        pair.failures += 1
        pair.until = now + self.policy.pair_wait(pair.failures)
        self._table.put(pair_subject, pair, now + self.policy.pair_lifetime(pair.failures))
        address_subject = _address(address)
        per_address = self._table.get(address_subject, now) or _Count(now)
        per_address.failures += 1
        self._table.put(address_subject, per_address, per_address.since + self.policy.window)

    async def succeeded(self, account: str, address: str) -> None:
        """A correct password clears that pair's count (not the address's)."""
        self._table.drop(_pair(account, address))
        if self.redis is not None:
            try:
                key = self.prefix + _pair(account, address)
                async with asyncio.timeout(self.deadline):
                    await self.redis.delete(key, key + ":wait")
            except (RedisError, OSError) as exc:
                log.warning("could not clear a login count", error=type(exc).__name__)

    async def signup(self, address: str) -> float | None:
        """Count one sign-up attempt from ``address``; seconds to wait if it is over the bound (then refuse it)."""
        subject = _signup(address)
        if self.redis is not None:
            try:
                key = self.prefix + subject
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.incr(key)
                    pipe.pexpire(key, int(self.policy.signup_window * 1000), nx=True)
                    pipe.pttl(key)
                    async with asyncio.timeout(self.deadline):
                        count, _, ttl_ms = await pipe.execute()
                return max(1.0, int(ttl_ms) / 1000) if int(count) > self.policy.signup_attempts else None
            except (RedisError, OSError) as exc:
                log.warning("sign-up throttle falls back to this replica", error=type(exc).__name__)
        now = self._clock()
        counted = self._table.get(subject, now) or _Count(now)
        counted.failures += 1
        self._table.put(subject, counted, counted.since + self.policy.signup_window)
        if counted.failures > self.policy.signup_attempts:
            return max(1.0, counted.since + self.policy.signup_window - now)
        return None

    async def _blocked_shared(self, account: str, address: str) -> float | None:
        assert self.redis is not None
        pair_key = self.prefix + _pair(account, address)
        address_key = self.prefix + _address(address)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.pttl(pair_key + ":wait")
            pipe.get(address_key)
            pipe.pttl(address_key)
            pair_wait_ms, address_count, address_ttl_ms = await pipe.execute()
        waits = []
        if pair_wait_ms is not None and int(pair_wait_ms) > 0:
            waits.append(int(pair_wait_ms) / 1000)
        if address_count is not None and int(address_count) >= self.policy.address_attempts:
            waits.append(max(0, int(address_ttl_ms)) / 1000)
        return max(1.0, max(waits)) if waits else None

    async def _failed_shared(self, account: str, address: str) -> None:
        assert self.redis is not None
        pair_key = self.prefix + _pair(account, address)
        address_key = self.prefix + _address(address)
        failures = int(await self.redis.incr(pair_key))
        wait = self.policy.pair_wait(failures)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.pexpire(pair_key, int(self.policy.pair_lifetime(failures) * 1000))
            if wait > 0:
                pipe.set(pair_key + ":wait", "1", px=int(wait * 1000))
            pipe.incr(address_key)
            pipe.pexpire(address_key, int(self.policy.window * 1000), nx=True)
            await pipe.execute()
