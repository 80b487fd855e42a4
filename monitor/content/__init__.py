"""Real-message canaries and content checks (issue #16): building a user's own message as a
probe, reading receivers' spam-filter verdicts, and linting a message before it is sent."""
