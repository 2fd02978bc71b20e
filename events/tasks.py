"""Celery tasks of the events app: dispatch (beat, every 2 s), one lane's delivery,
retention (beat, daily). Acknowledged late: a worker killed mid-task leaves the
lane's deliveries pending, and the next dispatch starts the lane again."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(acks_late=True, ignore_result=True)
def events_dispatch_task() -> int:
    lanes = services.events_dispatch()
    for subscription_id, stream in lanes:
        deliver_lane_task.delay(subscription_id, stream)
    return len(lanes)


@shared_task(acks_late=True, ignore_result=True)
def deliver_lane_task(subscription_id: str, stream: str) -> int:
    return services.deliver_lane(subscription_id, stream)


@shared_task(acks_late=True, ignore_result=True)
def events_prune_task() -> int:
    return services.events_prune()
