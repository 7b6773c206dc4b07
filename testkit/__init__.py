"""What the tests and the benchmarks share: bounded waiting and the fake Telegram Bot API server."""
