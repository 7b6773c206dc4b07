"""The one step every path takes: ticks and time in, verdicts, feed health and alert events out."""
