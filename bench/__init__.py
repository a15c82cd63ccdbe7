"""Benchmarks: agentrunner side by side with the bare upstream and a peer server."""
