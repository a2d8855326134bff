"""Service logs: the streaming reader, the error breakdown and its join with client results."""
