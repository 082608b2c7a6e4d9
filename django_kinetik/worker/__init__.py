"""The worker process: its loop, execution threads, heartbeat and stop handling."""

from .loop import Worker

__all__ = ["Worker"]
