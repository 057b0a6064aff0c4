"""Where YellowDog's rule is unknown, which reading the sandbox takes.

Lenient (the default) is the reading that lets most clients pass; ``--strict`` takes the
stricter one everywhere, so that a client that passes here does not rely on leniency the
real platform may not have. docs/sandbox.md ("Strict mode") gives each rule its evidence.
"""

from __future__ import annotations

from dataclasses import dataclass

# How long a node shutdown and an instance termination take in strict mode, unless given.
STRICT_NODE_SHUTDOWN_DELAY = 2.0
STRICT_TERMINATE_DELAY = 1.0


@dataclass(frozen=True)
class Strictness:
    """The sandbox's reading of each unknown rule; ``Strictness()`` is lenient."""

    # A finished work requirement's, pool's or compute requirement's name stays taken.
    reserve_finished_names: bool = False
    # DELETE nodes/{id}: None ends the node at once and lowers the pool's target by one;
    # a number of seconds ends it that long later and leaves the target alone.
    node_shutdown_delay: float | None = None
    # Shutting down a finished pool or node, terminating a terminated compute requirement,
    # cancelling a finished task: refused instead of a silent no-op.
    refuse_finished: bool = False
    # Seconds an instance stays TERMINATING once its node's processes are gone.
    terminate_delay: float = 0.0
    # Task groups removed from a work requirement's list still count towards its 1000.
    count_removed_groups: bool = False

    @property
    def strict(self) -> bool:
        return self.reserve_finished_names

    @classmethod
    def of(cls, strict: bool, node_shutdown_delay: float | None = None,
           terminate_delay: float | None = None) -> Strictness:
        """The strict or lenient reading; delays given explicitly apply in either."""
        if not strict:
            return cls(node_shutdown_delay=node_shutdown_delay, terminate_delay=terminate_delay or 0.0)
        return cls(
            reserve_finished_names=True,
            node_shutdown_delay=STRICT_NODE_SHUTDOWN_DELAY if node_shutdown_delay is None else node_shutdown_delay,
            refuse_finished=True,
            terminate_delay=STRICT_TERMINATE_DELAY if terminate_delay is None else terminate_delay,
            count_removed_groups=True,
        )
