"""The one I/O stack: connections, the topology that places round trips, the
executor, the driver and the coalescer. See docs/design.md."""
