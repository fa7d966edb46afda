"""The local stack: the real API on an embedded AWS emulator (`make run`)."""
