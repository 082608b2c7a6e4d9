"""The fence, with the silence and the running attempts passed in: what it does at each point of a lease."""

import pytest

from django_kinetik.backends import WorkerInfo, get_backend
from django_kinetik.models import Worker
from django_kinetik.worker.fence import Fence, end_attempts_after, stop_claiming_after


class Watched:
    def __init__(self, lease=10.0):
        self.silent = 0.0
        self.running = 0
        self.breaches = []
        self.fence = Fence(lease, lambda: self.silent, lambda: self.running, self._breach)

    def _breach(self, silent, running):
        self.breaches.append((silent, running))

    def at(self, silent, running=0):
        self.silent, self.running = silent, running
        self.fence.look()
        return self.fence.claiming


def test_a_worker_stops_claiming_at_half_a_lease_without_renewal_and_claims_again_once_renewed():
    watched = Watched(lease=10.0)
    assert stop_claiming_after(10.0) == 5.0
    assert watched.at(4.9, running=3) is True
    assert watched.at(5.0, running=3) is False
    assert watched.at(0.1, running=3) is True
    assert watched.breaches == []


def test_running_attempts_are_ended_before_their_leases_can_expire():
    watched = Watched(lease=10.0)
    assert end_attempts_after(10.0) == 7.5 < 10.0
    watched.at(7.4, running=2)
    assert watched.breaches == []
    watched.at(7.5, running=2)
    assert watched.breaches == [(7.5, 2)]


def test_a_worker_with_nothing_running_only_stops_claiming():
    watched = Watched(lease=10.0)
    assert watched.at(60.0, running=0) is False
    assert watched.breaches == []


@pytest.mark.django_db(transaction=True)
def test_a_worker_marked_lost_is_online_again_once_its_heartbeat_gets_through():
    backend = get_backend("default")
    worker_id = backend.register_worker(WorkerInfo(name="cut-off", host="h", pid=1, tags=["alpha"], concurrency=1))
    Worker.objects.filter(pk=worker_id).update(state=Worker.State.LOST)
    backend.heartbeat(worker_id, 10.0, [], {"jobs_done": 0, "runaway_threads": 0})
    assert Worker.objects.get(pk=worker_id).state == Worker.State.ONLINE
    Worker.objects.filter(pk=worker_id).update(state=Worker.State.STOPPING)
    backend.heartbeat(worker_id, 10.0, [], {"jobs_done": 0, "runaway_threads": 0})
    assert Worker.objects.get(pk=worker_id).state == Worker.State.STOPPING
