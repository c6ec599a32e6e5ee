"""The embedded sandbox: moto, a Slack Web API emulator and the real bot on loopback (`make demo`, tests)."""
