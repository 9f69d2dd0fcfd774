"""Tools around the clearance pipeline, never run by a night: the export simulator, the delivery
writer (the simulator's and the tests' hand-written deliveries), the demo's local mail sink, and the
benchmark with its pandas baseline and port cutter. Installed with the development dependency group."""
