"""Sans-IO core: builds Redis commands as data and decides what replies mean.

Rules of this package: standard library only; no socket, no event loop, no
clock and no environment. Time enters as a ``now`` argument (seconds, from a
monotonic clock the facade owns); replies enter as the raw values redis-py
returns with its response callbacks removed, in RESP2 or RESP3 shape.
"""
