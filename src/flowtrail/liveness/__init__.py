"""Runs that outlive their process: leases and their heartbeat, process identity, the
sweeper and the "why is this run not moving?" verdict."""
