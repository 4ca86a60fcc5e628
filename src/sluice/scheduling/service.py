"""The scheduler as the pipeline sees it: ``acquire(deployment, principal) -> Slot``, snapshots, waiting lists.

It turns a principal into a tenant and a priority class, skips deployments without a capacity entirely, and
records queue metrics; the backend (in-process, Redis or RabbitMQ) does the rest.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sluice.config import SchedulingConfig
from sluice.identity.principal import Principal
from sluice.scheduling.backend import UNLIMITED, OutputRate, Request, SchedulerBackend, Slot, WaiterLeft
from sluice.scheduling.local import LocalBackend
from sluice.scheduling.ordering import Policy
from sluice.server.exchange import ClientGone

if TYPE_CHECKING:
    from sluice.observability.metrics import Metrics
    from sluice.routing.catalog import Deployment

ANONYMOUS = "anonymous"


def owner_of(principal: Principal | None) -> str:
    """Who a waiting request belongs to, for "my waiting requests" (never a secret)."""
    return f"{principal.kind}:{principal.id}" if principal is not None else ANONYMOUS


class Scheduler:
    def __init__(self, config: SchedulingConfig, backend: SchedulerBackend, metrics: Metrics | None = None) -> None:
        self.config = config
        self.policy = Policy.from_config(config)
        self.backend = backend
        self.metrics = metrics
        self._observers: dict[tuple[str, str], Callable[[float], None]] = {}
        self._rates: dict[str, OutputRate] = {}  # per deployment: output generated per second held
        # The ids of the catalog's deployments with a capacity (set by the gateway), so views cover them all.
        self.known: Callable[[], list[str]] = list

    @classmethod
    def local(cls, config: SchedulingConfig, metrics: Metrics | None = None) -> Scheduler:
        """The in-process scheduler (the default backend)."""
        return cls(config, LocalBackend(Policy.from_config(config)), metrics)

    async def start(self) -> None:
        await self.backend.start()

    async def close(self) -> None:
        await self.backend.close()

    async def acquire(
        self,
        deployment: Deployment,
        principal: Principal | None,
        model: str = "",
        alive: Callable[[], bool] | None = None,
        prompt_tokens: Callable[[], int] | None = None,
    ) -> Slot:
        """A slot on ``deployment`` for this caller, waiting in line if the deployment is at capacity.

        ``alive`` says whether the caller's client is still there; a slot that comes after it left goes on to the
        next in line, and this raises :class:`~sluice.server.exchange.ClientGone`. ``prompt_tokens`` (asked only
        for a deployment with a capacity) is charged to the tenant's fair-share counter when the slot is granted;
        the slot's release settles the rest.
        """
        capacity = deployment.capacity
        if capacity is None:
            return UNLIMITED
        if principal is None:
            rule, tenant = self.policy.default, ANONYMOUS
        else:
            rule, tenant = self.policy.rule(principal.priority), principal.tenant
        rate = self._rates.get(deployment.id)
        if rate is None:
            rate = self._rates[deployment.id] = OutputRate()
        prompt = float(prompt_tokens()) if prompt_tokens is not None else 0.0
        # Charged at the grant: the prompt (as VTC does); the output is settled on release. (Charging the
        # deployment's mean output up front too was measured: it charged a light tenant with a call running at the
        # flooder's answer size, and put it behind the flooder's next request at every other arrival.)
        request = Request(deployment.id, capacity, tenant, rule, owner_of(principal), model, alive, prompt)
        try:
            slot = await self.backend.acquire(request, self.policy.output_weight)
        except WaiterLeft:
            raise ClientGone from None
        slot.meter, slot.granted_at, slot.prompt = rate, time.monotonic(), prompt
        if self.metrics is not None:
            self._observer(deployment.id, rule.name)(slot.waited)
        return slot

    def _observer(self, deployment: str, priority: str) -> Callable[[float], None]:
        key = (deployment, priority)
        found = self._observers.get(key)
        if found is None:
            assert self.metrics is not None
            found = self._observers[key] = self.metrics.queue_wait.labels(deployment, priority).observe
        return found

    async def snapshot(self, tenant: str | None = None) -> dict[str, Any]:
        """The admin view: per deployment and class, depth, in flight, oldest and estimated wait (JSON-able).

        With ``tenant``, the per-tenant breakdown shows only that tenant.
        """
        return {
            "backend": self.backend.name,
            "classes": [
                {
                    "name": rule.name,
                    "rank": rule.rank,
                    "aging_bound_s": rule.bound,
                    "max_wait_s": rule.max_wait,
                    "max_queue": rule.max_queue,
                    "max_queue_per_tenant": rule.max_queue_per_tenant,
                }
                for rule in self.policy.classes
            ],
            "deployments": await self.backend.snapshot(tenant, self.known()),
        }

    async def waiting(self, principal: Principal) -> list[dict[str, Any]]:
        """The caller's own requests waiting for a slot, with their current place in line."""
        return await self.backend.waiting_of(owner_of(principal), self.known())

    def update_depth_gauges(self) -> None:
        """Set ``sluice_queue_depth`` from the requests this process has waiting (called on each scrape)."""
        if self.metrics is None:
            return
        for (deployment, priority), count in self.backend.local_depths().items():
            self.metrics.queue_depth.labels(deployment, priority).set(count)
